#pragma once
// A process under health supervision, for the failover tests and the failover benchmark: a
// health::app running on its own thread with a Redis client (service), the Redis PING
// probe and five components supervised on it:
//   scheduler   a scheduler dispatcher (redis provider, direct sink), tasks "task-N";
//   stream      a stream consumer (group "failover", fixed consumer name) on NS:events,
//               also on the stream_readable_probe of that stream, entries "entry-N";
//   subscriber  a pub/sub subscriber on NS:news (a new subscriber per start: restarting
//               the component is what re-subscribes), messages "news-N";
//   queue       a reliable-queue consumer (fixed consumer id: a restart re-reads its
//               processing list) on queue NS:jobs, items "item-N";
//   heartbeat   a user component (INCR every 20 ms, reports a lost connection at once).
// A producer service schedules a task, appends a stream entry and pushes a queue item every
// few milliseconds, each call retried until Redis takes it, so work is produced before,
// during and after an outage; the handlers record every id they ran. Every Redis client
// of the process reconnects with the same backoff (without jitter when asked, so a test
// can count the attempts against the steps).
//
// The test thread controls the Redis process and reads the state through on_loop().

#include <atomic>
#include <chrono>
#include <corvo/health/app.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <corvo/stream/consumer.hpp>
#include <corvo/stream/producer.hpp>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace corvo::test {

struct failover_process_options {
  std::string redis_url;
  std::string name_space = "failover";
  std::chrono::milliseconds probe_interval{100};
  // 500 ms: a PING of a healthy server on a loaded CI machine (ASan, parallel tests) stays
  // well inside it, so only the failures under test take a dependency down.
  std::chrono::milliseconds probe_timeout{500};
  std::chrono::milliseconds stop_timeout{1000};
  /// Ceiling of the Redis clients' reconnection delays (the connection default is 2 s):
  /// how soon after Redis is back the client reconnects, hence the resume time.
  std::chrono::milliseconds reconnect_max{2000};
  /// Full jitter on the clients' reconnection delays (false: each delay is its ceiling,
  /// 50 ms doubling up to reconnect_max, so attempts can be counted against the steps).
  bool reconnect_jitter = true;
  /// drain_timeout of the scheduler, the stream consumer and the queue consumer. With Redis
  /// killed, their stops wait up to this long for acknowledgements that cannot reach it (the
  /// queue adds up to 100 ms for signing off): it is most of the stop time (bench failover).
  std::chrono::milliseconds drain_timeout{100};
  /// Reply deadline of every Redis client of the process (redis::config::request_timeout;
  /// 0: the library default, 5 s).
  std::chrono::milliseconds request_timeout{0};
  /// health::reset_when_down on the Redis dependency and the command client (which the
  /// scheduler, the stream consumer and the queue consumer use, with their dedicated
  /// clients): a hung Redis's connections are dropped when the probe declares it down.
  bool reset_when_down = true;
  /// Time between two rounds of production (one task, one entry, one item per round).
  std::chrono::milliseconds produce_every{20};
};

/// When each component last stopped and started (steady clock), from the supervisions.
struct component_times {
  std::chrono::steady_clock::time_point stopped{};
  std::chrono::steady_clock::time_point started{};
  std::uint64_t starts = 0;
  std::uint64_t stops = 0;
  std::uint64_t overruns = 0;
  bool running = false;
};

class failover_process {
 public:
  explicit failover_process(failover_process_options options);
  /// Stops the app (graceful drain) and joins the loop thread.
  ~failover_process();

  /// Runs `f` on the loop thread and returns its result.
  template <class F>
  auto on_loop(F f) -> decltype(f()) {
    using result_type = decltype(f());
    std::promise<result_type> done;
    post_to_loop([&] {
      if constexpr (std::is_void_v<result_type>) {
        f();
        done.set_value();
      } else {
        done.set_value(f());
      }
    });
    return done.get_future().get();
  }

  /// Component name ("scheduler", "stream", "subscriber", "queue", "heartbeat") -> times
  /// (a copy).
  std::map<std::string, component_times> times();
  bool all_running();
  bool none_running();
  /// connects + connect_failures of the command client's connection.
  std::uint64_t connection_attempts();
  /// Ids whose production completed / ids a handler ran, of every kind ("task-N",
  /// "entry-N", "item-N") or of one kind ("task", "entry", "item").
  std::set<std::string> produced();
  std::set<std::string> handled();
  std::set<std::string> produced(const std::string& kind);
  std::set<std::string> handled(const std::string& kind);
  /// Pub/sub: payloads the subscriber received so far.
  std::set<std::string> received();
  /// Publishes `n` messages "news-K" (K counting on from the last call) on the channel from
  /// the loop; returns their payloads and the receivers the server counted for each.
  std::vector<std::pair<std::string, std::int64_t>> publish(int n);
  /// PUBSUB NUMSUB of the channel (-1 when the command failed).
  std::int64_t subscribers();
  /// The channel, the stream and the queue the components use.
  std::string channel() const { return options_.name_space + ":news"; }
  std::string stream() const { return options_.name_space + ":events"; }
  std::string queue() const { return options_.name_space + ":jobs"; }
  /// When the handler first ran a task after `since` (zero if not yet).
  std::chrono::steady_clock::time_point first_handled_after(
      std::chrono::steady_clock::time_point since);
  /// Production rounds started so far (ids task-0 … task-(n-1), entry-…, item-…).
  std::uint64_t started() const noexcept { return started_; }
  /// While on, every handler (task, entry, item) that starts waits until the Redis
  /// dependency is down, then finishes normally (every second held task fails instead):
  /// work in flight at a failure whose acknowledgement (or failure report) must go to the
  /// failed server.
  void hold_handlers(bool on);
  /// Handlers of `kind` ("task", "entry", "item") held now.
  std::uint64_t held(const std::string& kind);
  /// Stops producing (the calls in progress still complete).
  void stop_producing();
  /// Every produced id handled (after stop_producing, once the calls in progress are done).
  bool everything_handled();
  health::app& app() noexcept { return *app_; }
  /// What the monitor knows now about dependency `name` ("redis" or "stream").
  health::dependency_report dependency(const std::string& name);

 private:
  void post_to_loop(std::function<void()> f);
  asio::awaitable<void> produce();
  asio::awaitable<void> produce_one(std::string kind, std::uint64_t n);
  asio::awaitable<void> produce_kind(const std::string& kind, const std::string& id);
  asio::awaitable<void> handle(std::string id);
  void record_handled(const std::string& id);
  template <class T>
  T wait_on_loop(std::function<asio::awaitable<T>()> f);

  failover_process_options options_;
  std::unique_ptr<health::app> app_;
  std::unique_ptr<redis::client> commands_;
  std::unique_ptr<schedule::scheduler> scheduler_;
  std::unique_ptr<stream::consumer> stream_consumer_;
  std::unique_ptr<stream::producer> stream_producer_;
  std::unique_ptr<queue::producer> queue_producer_;
  std::uint64_t published_ = 0;
  std::mutex mutex_;
  std::map<std::string, component_times> times_;
  std::map<std::string, std::set<std::string>> produced_;
  std::map<std::string, std::set<std::string>> handled_;
  std::set<std::string> received_;
  std::vector<std::chrono::steady_clock::time_point> handled_at_;
  std::map<std::string, std::uint64_t> held_;
  std::uint64_t held_tasks_ = 0;  // held task handlers started (every second one fails)
  std::atomic<bool> holding_{false};
  std::atomic<bool> producing_{true};
  std::atomic<std::uint64_t> started_{0};
  std::atomic<int> producing_calls_{0};
  std::thread loop_;
};

/// CPU time (user + system) this process has used so far.
std::chrono::microseconds process_cpu_time();

}  // namespace corvo::test
