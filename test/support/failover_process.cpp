#include "support/failover_process.hpp"

#include <sys/resource.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/health/probes.hpp>
#include <corvo/redis/error.hpp>

namespace corvo::test {
namespace {

using steady = std::chrono::steady_clock;

// The user component: INCR a key every 20 ms; a connection failure is reported to the
// monitor at once (it does not wait for the next probe) and ends the run.
asio::awaitable<void> heartbeat(redis::client* redis, health::dependency dep, std::string key) {
  for (;;) {
    redis::request req;
    req.push("INCR", key);
    try {
      co_await redis->exec(req);
    } catch (const boost::system::system_error& e) {
      if (e.code() != asio::error::operation_aborted) {
        dep.report_failure(std::string("heartbeat: ") + e.what());
      }
      throw;
    }
    co_await sleep_for(std::chrono::milliseconds(20));
  }
}

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
  return cfg;
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

  commands_ = std::make_unique<redis::client>(ex, client_config_of(options_));
  schedule::scheduler_options so;
  so.provider = schedule::provider::redis;
  so.redis.name_space = options_.name_space;
  so.redis.shards = 4;
  so.dispatch.lease = std::chrono::seconds(2);
  so.dispatch.drain_timeout = std::chrono::milliseconds(300);
  so.dispatch.store_retry = {std::chrono::milliseconds(50), std::chrono::milliseconds(500)};
  scheduler_ =
      std::make_unique<schedule::scheduler>(ex, so, commands_.get(), client_config_of(options_));
  scheduler_->handlers().on_task("failover.task",
                                 [this](const schedule::claimed_task& t) -> asio::awaitable<void> {
                                   std::lock_guard lock(mutex_);
                                   handled_.insert(t.work.id);
                                   handled_at_.push_back(steady::now());
                                   co_return;
                                 });

  app_->add_service("redis", [c = commands_.get()] { return c->run(); });
  const auto redis_dep = app_->add_dependency("redis", health::redis_ping_probe(*commands_));
  auto* sched = scheduler_.get();
  app_->add_component({"scheduler", [sched] { return sched->run(); }}, {redis_dep});
  auto* commands = commands_.get();
  const auto key = options_.name_space + ":heartbeat";
  app_->add_component(
      {"heartbeat", [commands, redis_dep, key] { return heartbeat(commands, redis_dep, key); }},
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

asio::awaitable<void> failover_process::produce_one(std::string id) {
  retry_policy policy;
  policy.max_attempts = 0;
  policy.delays = {std::chrono::milliseconds(20), std::chrono::milliseconds(500)};
  schedule_once operation{scheduler_.get(), id};  // named: GCC 12 (aggregate temporaries)
  co_await retry(operation, policy);
  {
    std::lock_guard lock(mutex_);
    produced_.insert(id);
  }
  --producing_calls_;
}

asio::awaitable<void> failover_process::produce() {
  const auto ex = co_await asio::this_coro::executor;
  task_group calls(
      ex, task_group_options{.max_in_flight = 0, .on_failure = failure_policy::collect_errors});
  try {
    for (std::uint64_t i = 0; producing_; ++i) {
      ++producing_calls_;
      ++started_;
      co_await calls.spawn(produce_one("task-" + std::to_string(i)));
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

std::uint64_t failover_process::connection_attempts() {
  return on_loop([this] {
    const auto& s = commands_->standalone()->stats();
    return s.connects + s.connect_failures;
  });
}

std::set<std::string> failover_process::produced() {
  std::lock_guard lock(mutex_);
  return produced_;
}

std::set<std::string> failover_process::handled() {
  std::lock_guard lock(mutex_);
  return handled_;
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
  for (const auto& id : produced_) {
    if (!handled_.contains(id))
      return false;
  }
  return true;
}

}  // namespace corvo::test
