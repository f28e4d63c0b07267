#include "support/failover_process.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/health/probes.hpp>
#include <corvo/pubsub/publish.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <corvo/queue/reliable_queue.hpp>
#include <corvo/redis/error.hpp>
#include <stdexcept>

#include "support/redis_writer_component.hpp"

namespace corvo::test {
namespace {

using steady = std::chrono::steady_clock;

struct schedule_once {
  schedule::scheduler* sched;
  std::string id;
  asio::awaitable<void> operator()() const {
    boost::json::value payload;
    payload = boost::json::string_view(id);
    co_await sched->schedule(id, "failover.task", payload, schedule::now());
  }
};

redis::client_config client_config_of(const failover_process_options& o) {
  auto cfg = redis::client_config::from_url(o.redis_url);
  cfg.server.reconnect_backoff.max = o.reconnect_max;
  cfg.server.reconnect_backoff.jitter = o.reconnect_jitter;
  if (o.request_timeout.count() > 0) {
    cfg.server.request_timeout = o.request_timeout;
  }
  return cfg;
}

// The subscriber component: a new subscriber (its own connection) per start, subscribed to
// `channel`, handing every payload to `received`. On cancellation the subscriber is
// cancelled and its run() awaited before it is destroyed.
asio::awaitable<void> subscribe_and_receive(redis::client_config cfg, std::string channel,
                                            std::function<void(std::string)> received) {
  const auto ex = co_await asio::this_coro::executor;
  pubsub::subscriber sub(ex, cfg);
  auto run_ended = std::make_shared<asio::steady_timer>(ex, steady::time_point::max());
  auto ended = std::make_shared<bool>(false);
  asio::co_spawn(ex, sub.run(), [run_ended, ended](std::exception_ptr) {
    *ended = true;
    run_ended->cancel();
  });
  std::exception_ptr failure;
  try {
    std::vector<std::string> channels{channel};  // named: GCC 12 (DESIGN §9)
    co_await sub.subscribe(channels);
    for (;;) {
      auto m = co_await sub.receive();
      received(std::move(m.payload));
    }
  } catch (...) {
    failure = std::current_exception();
  }
  sub.cancel();
  co_await asio::this_coro::reset_cancellation_state();
  while (!*ended) {
    boost::system::error_code ignored;
    co_await run_ended->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  std::rethrow_exception(failure);
}

// The queue component: a reliable-queue consumer with a fixed id, built per start (its
// start-up recovers what the previous run left in its processing list).
asio::awaitable<void> consume_queue(redis::client* redis, queue::queue_options options,
                                    queue::handler_type handler) {
  queue::reliable_queue q(*redis, std::move(options), std::move(handler));
  co_await q.run();
}

}  // namespace

std::chrono::microseconds process_cpu_time() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto us = [](const timeval& t) {
    return std::chrono::seconds(t.tv_sec) + std::chrono::microseconds(t.tv_usec);
  };
  return us(usage.ru_utime) + us(usage.ru_stime);
}

failover_process::failover_process(failover_process_options options)
    : options_(std::move(options)) {
  health::app_options app_options;
  app_options.probes.interval = options_.probe_interval;
  app_options.probes.timeout = options_.probe_timeout;
  app_options.policy.stop_timeout = options_.stop_timeout;
  app_options.policy.restart_backoff = {std::chrono::milliseconds(20),
                                        std::chrono::milliseconds(500)};
  app_options.stop_signals = {};
  app_options.shutdown_deadline = std::chrono::seconds(10);
  app_ = std::make_unique<health::app>(app_options);
  const auto ex = app_->get_executor();
  const auto redis_config = client_config_of(options_);

  commands_ = std::make_unique<redis::client>(ex, redis_config);
  schedule::scheduler_options so;
  so.provider = schedule::provider::redis;
  so.redis.name_space = options_.name_space;
  so.redis.shards = 4;
  so.dispatch.lease = std::chrono::seconds(2);
  so.dispatch.drain_timeout = options_.drain_timeout;
  so.dispatch.store_retry = {std::chrono::milliseconds(50), std::chrono::milliseconds(500)};
  scheduler_ = std::make_unique<schedule::scheduler>(ex, so, commands_.get(), redis_config);
  scheduler_->handlers().on_task("failover.task",
                                 [this](const schedule::claimed_task& t) -> asio::awaitable<void> {
                                   co_await handle(t.work.id);
                                 });

  stream::consumer_options co;
  co.group = "failover";
  co.streams = {stream()};
  co.consumer = "failover-consumer";
  co.drain_timeout = options_.drain_timeout;
  co.redis_retry = {std::chrono::milliseconds(50), std::chrono::milliseconds(500)};
  stream_consumer_ = std::make_unique<stream::consumer>(*commands_, co);
  stream_producer_ = std::make_unique<stream::producer>(*commands_);
  queue_producer_ = std::make_unique<queue::producer>(*commands_, queue());

  app_->add_service("redis", [c = commands_.get()] { return c->run(); });
  const auto redis_dep = app_->add_dependency("redis", health::redis_ping_probe(*commands_));
  if (options_.reset_when_down) {
    health::reset_when_down(redis_dep, *commands_);
  }
  const auto stream_dep =
      app_->add_dependency("stream", health::stream_readable_probe(*commands_, {stream()}));
  auto* sched = scheduler_.get();
  app_->add_component({"scheduler", [sched] { return sched->run(); }}, {redis_dep});

  auto* consumer = stream_consumer_.get();
  app_->add_component(
      {"stream",
       [this, consumer] {
         return consumer->run([this](const stream::entry& e) -> asio::awaitable<void> {
           co_await handle(std::string(e.field("id").value_or("")));
         });
       }},
      {redis_dep, stream_dep});

  app_->add_component({"subscriber",
                       [this, redis_config] {
                         return subscribe_and_receive(redis_config, channel(),
                                                      [this](std::string p) {
                                                        std::lock_guard lock(mutex_);
                                                        received_.insert(std::move(p));
                                                      });
                       }},
                      {redis_dep});

  queue::queue_options qo;
  qo.name = queue();
  qo.consumer = "failover-consumer";
  qo.block_timeout = std::chrono::milliseconds(200);
  qo.drain_timeout = options_.drain_timeout;
  auto* commands = commands_.get();
  app_->add_component({"queue",
                       [this, commands, qo] {
                         return consume_queue(
                             commands, qo, [this](const queue::item& i) -> asio::awaitable<void> {
                               co_await handle(i.body);
                             });
                       }},
                      {redis_dep});

  const auto key = options_.name_space + ":heartbeat";
  app_->add_component({"heartbeat",
                       [commands, redis_dep, key] {
                         return redis_writer_component(*commands, redis_dep, key, "heartbeat");
                       }},
                      {redis_dep});
  for (auto* s : app_->supervisions()) {
    times_[s->name()];
    s->on_transition([this](const health::supervision& s, health::supervision_state,
                            health::supervision_state to) {
      std::lock_guard lock(mutex_);
      auto& t = times_[s.name()];
      t.starts = s.stats().starts;
      t.stops = s.stats().stops;
      t.overruns = s.stats().stop_overruns;
      if (to == health::supervision_state::running) {
        t.started = steady::now();
        t.running = true;
      } else if (t.running && (to == health::supervision_state::waiting ||
                               to == health::supervision_state::starting)) {
        t.stopped = steady::now();
        t.running = false;
      }
    });
    s->on_stop_overrun([this](const health::supervision& s) {
      std::lock_guard lock(mutex_);
      ++times_[s.name()].overruns;
    });
  }
  app_->add_service("producer", [this] { return produce(); });
  loop_ = std::thread([this] { app_->run(); });
}

failover_process::~failover_process() {
  producing_ = false;
  post_to_loop([this] { app_->request_stop(); });
  loop_.join();
}

void failover_process::post_to_loop(std::function<void()> f) {
  asio::post(app_->get_executor(), std::move(f));
}

asio::awaitable<void> failover_process::handle(std::string id) {
  if (holding_) {
    const auto kind = id.substr(0, id.find('-'));
    bool fail = false;
    {
      std::lock_guard lock(mutex_);
      ++held_[kind];
      // Every second held task fails once Redis is down: its failure must be reported to
      // the failed server (the others' acknowledgements must be sent there).
      fail = kind == "task" && ++held_tasks_ % 2 == 0;
    }
    const auto redis_dep = app_->monitor().find("redis");
    std::exception_ptr cut;
    try {
      while (redis_dep.state() != health::status::down) {
        co_await sleep_for(std::chrono::milliseconds(5));
      }
    } catch (...) {
      cut = std::current_exception();
    }
    {
      std::lock_guard lock(mutex_);
      --held_[kind];
    }
    if (cut) {
      std::rethrow_exception(cut);
    }
    if (fail) {
      throw std::runtime_error(id + ": failed with Redis down (held)");
    }
  }
  record_handled(id);
}

void failover_process::hold_handlers(bool on) {
  holding_ = on;
}

std::uint64_t failover_process::held(const std::string& kind) {
  std::lock_guard lock(mutex_);
  return held_[kind];
}

void failover_process::record_handled(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto kind = id.substr(0, id.find('-'));
  handled_[kind].insert(id);
  if (kind == "task") {
    handled_at_.push_back(steady::now());
  }
}

asio::awaitable<void> failover_process::produce_kind(const std::string& kind,
                                                     const std::string& id) {
  if (kind == "task") {
    schedule_once operation{scheduler_.get(), id};  // named: GCC 12 (aggregate temporaries)
    co_await operation();
  } else if (kind == "entry") {
    std::vector<std::string> fields{"id", id};
    co_await stream_producer_->append_fields(stream(), std::move(fields));
  } else {
    co_await queue_producer_->push_raw(id);
  }
}

asio::awaitable<void> failover_process::produce_one(std::string kind, std::uint64_t n) {
  const auto id = kind + "-" + std::to_string(n);
  retry_policy policy;
  policy.max_attempts = 0;
  policy.delays = {std::chrono::milliseconds(20), std::chrono::milliseconds(500)};
  co_await retry([this, &kind, &id] { return produce_kind(kind, id); }, policy);
  {
    std::lock_guard lock(mutex_);
    produced_[kind].insert(id);
  }
  --producing_calls_;
}

asio::awaitable<void> failover_process::produce() {
  const auto ex = co_await asio::this_coro::executor;
  task_group calls(
      ex, task_group_options{.max_in_flight = 0, .on_failure = failure_policy::collect_errors});
  try {
    for (std::uint64_t i = 0; producing_; ++i) {
      ++started_;
      for (const char* kind : {"task", "entry", "item"}) {
        ++producing_calls_;
        co_await calls.spawn(produce_one(kind, i));
      }
      co_await sleep_for(options_.produce_every);
    }
  } catch (...) {
    calls.cancel();  // shutting down: abandon the calls still retrying
  }
  co_await asio::this_coro::reset_cancellation_state();
  try {
    co_await calls.join();
  } catch (...) {
  }
}

template <class T>
T failover_process::wait_on_loop(std::function<asio::awaitable<T>()> f) {
  std::promise<T> done;
  post_to_loop([&] {
    asio::co_spawn(app_->get_executor(), f(), [&](std::exception_ptr e, T v) {
      if (e) {
        done.set_exception(e);
      } else {
        done.set_value(std::move(v));
      }
    });
  });
  return done.get_future().get();
}

std::vector<std::pair<std::string, std::int64_t>> failover_process::publish(int n) {
  using result = std::vector<std::pair<std::string, std::int64_t>>;
  return wait_on_loop<result>([this, n]() -> asio::awaitable<result> {
    result out;
    for (int i = 0; i < n; ++i) {
      auto payload = "news-" + std::to_string(published_++);
      const auto receivers = co_await pubsub::publish(*commands_, channel(), payload);
      out.emplace_back(std::move(payload), receivers);
    }
    co_return out;
  });
}

std::int64_t failover_process::subscribers() {
  return wait_on_loop<std::int64_t>([this]() -> asio::awaitable<std::int64_t> {
    redis::request req;
    req.push("PUBSUB", "NUMSUB", channel());
    redis::generic_response resp;
    try {
      co_await commands_->exec(req, resp);
    } catch (const std::exception&) {
      co_return -1;
    }
    // A flat array: channel, count.
    if (resp.size() < 3) {
      co_return -1;
    }
    co_return std::stoll(resp.at(2).value);
  });
}

std::map<std::string, component_times> failover_process::times() {
  std::lock_guard lock(mutex_);
  return times_;
}

bool failover_process::all_running() {
  std::lock_guard lock(mutex_);
  for (const auto& [name, t] : times_) {
    if (!t.running)
      return false;
  }
  return true;
}

bool failover_process::none_running() {
  std::lock_guard lock(mutex_);
  for (const auto& [name, t] : times_) {
    if (t.running)
      return false;
  }
  return true;
}

health::dependency_report failover_process::dependency(const std::string& name) {
  return on_loop([this, &name] {
    auto& m = app_->monitor();
    return m.report(m.find(name));
  });
}

std::uint64_t failover_process::connection_attempts() {
  return on_loop([this] {
    const auto& s = commands_->standalone()->stats();
    return s.connects + s.connect_failures;
  });
}

std::set<std::string> failover_process::produced() {
  std::lock_guard lock(mutex_);
  std::set<std::string> all;
  for (const auto& [kind, ids] : produced_)
    all.insert(ids.begin(), ids.end());
  return all;
}

std::set<std::string> failover_process::handled() {
  std::lock_guard lock(mutex_);
  std::set<std::string> all;
  for (const auto& [kind, ids] : handled_)
    all.insert(ids.begin(), ids.end());
  return all;
}

std::set<std::string> failover_process::produced(const std::string& kind) {
  std::lock_guard lock(mutex_);
  return produced_[kind];
}

std::set<std::string> failover_process::handled(const std::string& kind) {
  std::lock_guard lock(mutex_);
  return handled_[kind];
}

std::set<std::string> failover_process::received() {
  std::lock_guard lock(mutex_);
  return received_;
}

steady::time_point failover_process::first_handled_after(steady::time_point since) {
  std::lock_guard lock(mutex_);
  for (const auto& t : handled_at_) {
    if (t >= since)
      return t;
  }
  return {};
}

void failover_process::stop_producing() {
  producing_ = false;
}

bool failover_process::everything_handled() {
  if (producing_ || producing_calls_ > 0) {
    return false;
  }
  std::lock_guard lock(mutex_);
  for (const auto& [kind, ids] : produced_) {
    for (const auto& id : ids) {
      if (!handled_[kind].contains(id))
        return false;
    }
  }
  return true;
}

}  // namespace corvo::test
