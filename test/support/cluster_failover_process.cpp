#include "support/cluster_failover_process.hpp"

#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/notifier.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/health/shard_gate.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/sink.hpp>
#include <corvo/stream/consumer.hpp>
#include <corvo/stream/producer.hpp>
#include <future>

#include "support/redis_writer_component.hpp"

namespace corvo::test {

namespace asio = boost::asio;
namespace health = corvo::health;
namespace redis = corvo::redis;
namespace schedule = corvo::schedule;
namespace stream = corvo::stream;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// The store of the dispatcher, recording each claim call (shard, time) before passing it on.
class claim_recording_store final : public schedule::store {
 public:
  using on_claim_fn = std::function<void(unsigned shard)>;
  claim_recording_store(schedule::store& inner, on_claim_fn on_claim)
      : inner_(inner), on_claim_(std::move(on_claim)) {}

  asio::awaitable<void> open() override { co_await inner_.open(); }
  unsigned shards() const noexcept override { return inner_.shards(); }
  unsigned shard_of(std::string_view id) const noexcept override { return inner_.shard_of(id); }
  asio::awaitable<void> schedule(schedule::task t) override {
    co_await inner_.schedule(std::move(t));
  }
  asio::awaitable<bool> schedule_if_absent(schedule::task t) override {
    co_return co_await inner_.schedule_if_absent(std::move(t));
  }
  asio::awaitable<std::optional<schedule::task>> get(std::string id) override {
    co_return co_await inner_.get(std::move(id));
  }
  asio::awaitable<std::vector<schedule::task>> browse(std::size_t offset,
                                                      std::size_t limit) override {
    co_return co_await inner_.browse(offset, limit);
  }
  asio::awaitable<bool> cancel(std::string id) override {
    co_return co_await inner_.cancel(std::move(id));
  }
  asio::awaitable<bool> reschedule(std::string id, schedule::time_point due) override {
    co_return co_await inner_.reschedule(std::move(id), due);
  }
  asio::awaitable<schedule::store_stats> stats() override { co_return co_await inner_.stats(); }
  asio::awaitable<schedule::claim_result> claim(unsigned shard, std::size_t limit,
                                                std::chrono::milliseconds lease) override {
    on_claim_(shard);
    co_return co_await inner_.claim(shard, limit, lease);
  }
  asio::awaitable<std::size_t> ack(unsigned shard,
                                   std::vector<schedule::completion> done) override {
    co_return co_await inner_.ack(shard, std::move(done));
  }
  asio::awaitable<bool> nack(unsigned shard, schedule::failure failed) override {
    co_return co_await inner_.nack(shard, std::move(failed));
  }
  asio::awaitable<std::vector<bool>> extend(unsigned shard, std::vector<schedule::lease_ref> leases,
                                            std::chrono::milliseconds lease) override {
    co_return co_await inner_.extend(shard, std::move(leases), lease);
  }
  asio::awaitable<std::vector<schedule::task>> dead_letters(std::size_t offset,
                                                            std::size_t limit) override {
    co_return co_await inner_.dead_letters(offset, limit);
  }
  asio::awaitable<bool> replay(std::string id) override {
    co_return co_await inner_.replay(std::move(id));
  }
  asio::awaitable<std::size_t> purge(std::string id) override {
    co_return co_await inner_.purge(std::move(id));
  }
  asio::awaitable<schedule::dedup_outcome> schedule_deduplicated(
      schedule::task t, schedule::dedup_options options) override {
    co_return co_await inner_.schedule_deduplicated(std::move(t), options);
  }
  asio::awaitable<void> pause(std::string type) override { co_await inner_.pause(std::move(type)); }
  asio::awaitable<void> resume(std::string type) override {
    co_await inner_.resume(std::move(type));
  }
  asio::awaitable<schedule::pause_state> paused() override { co_return co_await inner_.paused(); }
  asio::awaitable<void> watch_wakes(std::function<void(unsigned shard)> on_wake) override {
    co_await inner_.watch_wakes(std::move(on_wake));
  }

 private:
  schedule::store& inner_;
  on_claim_fn on_claim_;
};

struct open_store {
  schedule::store* store;
  asio::awaitable<void> operator()() const { co_await store->open(); }
};

}  // namespace

struct cluster_failover_process::impl : std::enable_shared_from_this<impl> {
  explicit impl(cluster_failover_options o) : options(std::move(o)), app(app_options()) {}

  static health::app_options app_options() {
    health::app_options o;
    o.probes.interval = 100ms;
    o.probes.timeout = 500ms;  // a healthy master under CI load answers well inside it
    o.policy.stop_timeout = 1s;
    o.policy.restart_backoff = {20ms, 500ms};
    o.stop_signals = {};
    o.shutdown_deadline = 10s;
    return o;
  }

  cluster_failover_options options;
  health::app app;
  std::unique_ptr<redis::client> client;
  std::unique_ptr<redis::client> appender;  // WAIT blocks its connection: dedicated
  std::unique_ptr<health::redis_cluster_health> cluster;
  std::map<std::string, std::unique_ptr<stream::consumer>> consumers;
  std::unique_ptr<schedule::redis_store> dispatch_store, producer_store;
  std::unique_ptr<claim_recording_store> recording;
  schedule::handler_registry handlers;
  std::unique_ptr<schedule::direct_sink> sink;
  schedule::dispatcher_options dispatch;

  // Loop thread only.
  bool producing = true;
  int producers_running = 0;
  std::map<std::string, int> replicas;
  std::set<unsigned> paused_shards;
  int schedules_in_flight = 0;

  std::mutex mutex;  // guards what the test thread reads
  std::map<std::string, component_life> lives;
  std::map<std::string, dependency_history> histories;  // by dependency name
  std::map<std::string, stream_tally> streams;
  scheduler_tally tasks;

  void build(const std::shared_ptr<impl>& self);

  // Loop thread only: streams whose next entry is held (hold_next_entry), and the wake-up
  // of held handlers when a component stops.
  std::set<std::string> hold_armed;
  std::unique_ptr<notifier> component_stopping;

  bool component_running(const std::string& name) {
    std::lock_guard lock(mutex);
    return lives[name].running;
  }

  // Holds entry `e` until the stream's component leaves `running` (it began to stop).
  static asio::awaitable<void> hold(std::shared_ptr<impl> self, const stream::entry& e) {
    {
      std::lock_guard lock(self->mutex);
      self->streams[e.stream].held = e.id;
    }
    while (self->component_running("stream " + e.stream)) {
      co_await self->component_stopping->wait();
    }
  }

  static asio::awaitable<void> consume(std::shared_ptr<impl> self, std::string key) {
    auto handler = [self](const stream::entry& e) -> asio::awaitable<void> {
      if (self->hold_armed.erase(e.stream) > 0) {
        co_await hold(self, e);
      }
      std::lock_guard lock(self->mutex);
      ++self->streams[e.stream].runs[e.id];
    };
    co_await self->consumers.at(key)->run(handler);
  }

  static asio::awaitable<void> dispatch_tasks(std::shared_ptr<impl> self) {
    schedule::dispatcher d(*self->recording, *self->sink, self->dispatch);
    co_await d.run();
  }

  // Appends batches of 10 to `key`, each followed by WAIT in the same request, every 20 ms.
  static asio::awaitable<void> append_loop(std::shared_ptr<impl> self, std::string key) {
    stream::producer producer(*self->appender);
    int n = 0;
    while (self->producing) {
      const int replicas = self->replicas[key];
      redis::request req;
      for (int i = 0; i < 10; ++i, ++n) {
        std::vector<std::string> fields{"n", std::to_string(n)};
        producer.push_xadd(req, key, fields);
      }
      req.push("WAIT", replicas, 500);
      redis::generic_response resp;
      std::vector<std::string> ids;
      try {
        co_await self->appender->exec(req, resp);
        for (const auto& node : resp) {
          if (node.depth == 0) {
            ids.push_back(node.value);
          }
        }
      } catch (const std::exception&) {
        ids.clear();
      }
      {
        std::lock_guard lock(self->mutex);
        auto& tally = self->streams[key];
        if (ids.size() == 11 && std::stoi(ids.back()) >= replicas) {
          tally.durable.insert(ids.begin(), ids.end() - 1);
        } else {
          ++tally.failed_batches;
        }
      }
      co_await sleep_for(20ms);
    }
  }

  static asio::awaitable<void> schedule_one(std::shared_ptr<impl> self, std::string id,
                                            unsigned shard) {
    schedule::task t;
    t.id = id;
    t.type = "gate.task";
    t.payload = boost::json::string(id);
    t.due = schedule::now();
    ++self->schedules_in_flight;
    try {
      co_await with_timeout(self->producer_store->schedule(std::move(t)), 3s);
      std::lock_guard lock(self->mutex);
      self->tasks.produced.emplace(id, shard);
    } catch (const std::exception&) {
      std::lock_guard lock(self->mutex);
      ++self->tasks.failed_schedules;
    }
    --self->schedules_in_flight;
  }

  // One task due now every 20 ms into a shard that is not paused.
  static asio::awaitable<void> schedule_loop(std::shared_ptr<impl> self) {
    retry_policy opening;
    opening.max_attempts = 0;
    opening.delays = {50ms, 500ms};
    auto* store = self->producer_store.get();
    const open_store open{store};  // named: GCC 12
    co_await retry(open, opening);
    const auto ex = co_await asio::this_coro::executor;
    task_group calls(
        ex, task_group_options{.max_in_flight = 0, .on_failure = failure_policy::collect_errors});
    for (std::uint64_t n = 0; self->producing; ++n) {
      const std::string id = "task-" + std::to_string(n);
      const unsigned shard = store->shard_of(id);
      if (self->paused_shards.contains(shard)) {
        continue;
      }
      co_await calls.spawn(schedule_one(self, id, shard));
      co_await sleep_for(20ms);
    }
    co_await calls.join();
  }

  static asio::awaitable<void> produce(std::shared_ptr<impl> self) {
    const auto ex = co_await asio::this_coro::executor;
    task_group loops(
        ex, task_group_options{.max_in_flight = 0, .on_failure = failure_policy::collect_errors});
    ++self->producers_running;
    for (const auto& key : self->options.stream_keys) {
      co_await loops.spawn(append_loop(self, key));
    }
    if (self->options.shards > 0) {
      co_await loops.spawn(schedule_loop(self));
    }
    try {
      co_await loops.join();
    } catch (...) {
    }
    --self->producers_running;
  }
};

void cluster_failover_process::impl::build(const std::shared_ptr<impl>& self) {
  const auto ex = app.get_executor();
  component_stopping = std::make_unique<notifier>(ex);
  const auto cfg = redis::client_config::from_cluster_seeds(options.seeds);
  client = std::make_unique<redis::client>(ex, cfg);
  appender = client->dedicated();
  app.add_service("redis", [c = client.get()] { return c->run(); });
  app.add_service("appender", [c = appender.get()] { return c->run(); });
  health::probe_options probes;
  probes.interval = 100ms;
  probes.timeout = 500ms;
  cluster = std::make_unique<health::redis_cluster_health>(app.monitor(), *client->cluster(),
                                                           "redis", probes);
  if (options.reset_when_down) {
    cluster->reset_when_down(*client);
  }
  for (const auto& key : options.writer_keys) {
    const auto dep = cluster->slot_dependency(key);
    auto* c = client.get();
    app.add_component(
        {"writer " + key, [c, dep, key] { return redis_writer_component(*c, dep, key, "writer"); }},
        {dep});
  }
  for (const auto& key : options.stream_keys) {
    stream::consumer_options o;
    o.group = "g";
    o.streams = {key};
    o.consumer = "c-" + key;
    o.block = 200ms;
    o.min_idle = 2000ms;  // only deliveries lost with the master are reclaimed
    o.claim_interval = 250ms;
    o.redis_retry = {20ms, 300ms};
    o.drain_timeout = options.stream_drain_timeout;
    consumers.emplace(key, std::make_unique<stream::consumer>(*client, o));
    replicas[key] = 1;
    streams[key];
    app.add_component({"stream " + key, [self, key] { return consume(self, key); }},
                      {cluster->slot_dependency(key)});
  }
  if (options.shards > 0) {
    schedule::redis_store_options so;
    so.name_space = options.name_space;
    so.shards = options.shards;
    dispatch_store = std::make_unique<schedule::redis_store>(*client, cfg, so);
    producer_store = std::make_unique<schedule::redis_store>(*client, cfg, so);
    recording = std::make_unique<claim_recording_store>(*dispatch_store, [this](unsigned shard) {
      std::lock_guard lock(mutex);
      tasks.claims[shard].push_back(steady::now());
    });
    handlers.on_task("gate.task", [this](const schedule::claimed_task& t) -> asio::awaitable<void> {
      std::lock_guard lock(mutex);
      ++tasks.runs[t.work.id];
      tasks.started[t.shard].push_back(steady::now());
      co_return;
    });
    sink = std::make_unique<schedule::direct_sink>(handlers);
    dispatch.lease = options.lease;
    dispatch.drain_timeout = 300ms;
    dispatch.store_retry = {50ms, 500ms};
    dispatch.shard_available = health::shard_gate(
        health::scheduler_shard_dependencies(*cluster, options.name_space, options.shards));
    app.add_component({"scheduler", [self] { return dispatch_tasks(self); }}, {cluster->cluster()});
  }
  app.monitor().on_transition(
      [this](const health::dependency& d, health::status, health::status to, std::string_view) {
        std::lock_guard lock(mutex);
        auto& h = histories[d.name()];
        if (to == health::status::down) {
          h.down.push_back(steady::now());
        } else if (to == health::status::up) {
          h.up.push_back(steady::now());
        }
      });
  for (auto* s : app.supervisions()) {
    lives[s->name()];
    s->on_transition([this](const health::supervision& s, health::supervision_state from,
                            health::supervision_state to) {
      std::lock_guard lock(mutex);
      auto& l = lives[s.name()];
      l.starts = s.stats().starts;
      l.stops = s.stats().stops;
      if (from == health::supervision_state::stopping) {
        l.stop_log.emplace_back(l.stopped, s.stats().last_stop);
      }
      if (to == health::supervision_state::running) {
        l.running = true;
        l.started = steady::now();
      } else if (l.running) {
        l.running = false;
        l.stopped = steady::now();
        component_stopping->notify_all();
      }
    });
  }
  app.add_service("producer", [self] { return produce(self); });
}

namespace {

template <class F>
auto on_loop(health::app& app, F f) -> decltype(f()) {
  std::promise<decltype(f())> done;
  asio::post(app.get_executor(), [&] {
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      done.set_value();
    } else {
      done.set_value(f());
    }
  });
  return done.get_future().get();
}

}  // namespace

cluster_failover_process::cluster_failover_process(cluster_failover_options options)
    : impl_(std::make_shared<impl>(std::move(options))) {
  impl_->build(impl_);
  loop_ = std::thread([i = impl_] { i->app.run(); });
}

cluster_failover_process::~cluster_failover_process() {
  stop_producing();
  asio::post(impl_->app.get_executor(), [i = impl_] { i->app.request_stop(); });
  loop_.join();
}

component_life cluster_failover_process::life(const std::string& component) {
  std::lock_guard lock(impl_->mutex);
  return impl_->lives.at(component);
}

std::vector<std::string> cluster_failover_process::components() {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::string> out;
  for (const auto& [name, l] : impl_->lives) {
    out.push_back(name);
  }
  return out;
}

dependency_history cluster_failover_process::slot_history(const std::string& key) {
  const auto name = "redis[slot " + std::to_string(redis::key_slot(key)) + "]";
  std::lock_guard lock(impl_->mutex);
  const auto it = impl_->histories.find(name);
  return it == impl_->histories.end() ? dependency_history{} : it->second;
}

stream_tally cluster_failover_process::stream(const std::string& key) {
  std::lock_guard lock(impl_->mutex);
  return impl_->streams[key];
}

scheduler_tally cluster_failover_process::scheduler() {
  std::lock_guard lock(impl_->mutex);
  return impl_->tasks;
}

void cluster_failover_process::pause_producing(const std::set<unsigned>& shards) {
  on_loop(impl_->app, [&] { impl_->paused_shards.insert(shards.begin(), shards.end()); });
  // The calls already made to those shards return.
  while (on_loop(impl_->app, [&] { return impl_->schedules_in_flight; }) > 0) {
    std::this_thread::sleep_for(5ms);
  }
}

void cluster_failover_process::resume_producing(const std::set<unsigned>& shards) {
  on_loop(impl_->app, [&] {
    for (const auto s : shards) {
      impl_->paused_shards.erase(s);
    }
  });
}

void cluster_failover_process::set_replicas(const std::string& stream_key, int replicas) {
  on_loop(impl_->app, [&] { impl_->replicas[stream_key] = replicas; });
}

void cluster_failover_process::stop_producing() {
  on_loop(impl_->app, [&] { impl_->producing = false; });
  const auto deadline = steady::now() + 30s;
  while (on_loop(impl_->app, [&] { return impl_->producers_running; }) > 0 &&
         steady::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
}

void cluster_failover_process::hold_next_entry(const std::string& stream_key) {
  on_loop(impl_->app, [&] {
    std::lock_guard lock(impl_->mutex);
    impl_->streams[stream_key].held.clear();
    impl_->hold_armed.insert(stream_key);
  });
}

health::status cluster_failover_process::cluster_state() {
  return on_loop(impl_->app, [&] { return impl_->cluster->cluster().state(); });
}

std::string cluster_failover_process::cluster_detail() {
  return on_loop(impl_->app,
                 [&] { return impl_->app.monitor().report(impl_->cluster->cluster()).detail; });
}

}  // namespace corvo::test
