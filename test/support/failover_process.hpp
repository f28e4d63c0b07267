#pragma once
// A process under health supervision, for the failover tests and the failover benchmark: a
// health::app running on its own thread with a Redis client (service), the Redis PING
// probe, a scheduler (redis provider, direct sink) and a user component (a heartbeat that
// INCRs a key and reports a lost connection to the monitor), both supervised on the Redis
// dependency. A producer schedules a task every few milliseconds, each call retried until
// Redis takes it, so tasks are produced before, during and after an outage; the handler
// records every task it ran.
//
// The test thread controls the Redis process and reads the state through on_loop().

#include <atomic>
#include <chrono>
#include <corvo/health/app.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

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
  /// Time between two scheduled tasks.
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

  /// Component name ("scheduler", "heartbeat") -> times (a copy).
  std::map<std::string, component_times> times();
  bool all_running();
  bool none_running();
  /// connects + connect_failures of the command client's connection.
  std::uint64_t connection_attempts();
  /// Ids whose schedule() completed / ids the handler ran.
  std::set<std::string> produced();
  std::set<std::string> handled();
  /// When the handler first ran a task after `since` (zero if not yet).
  std::chrono::steady_clock::time_point first_handled_after(
      std::chrono::steady_clock::time_point since);
  /// Schedule calls started so far (ids task-0 … task-(n-1)).
  std::uint64_t started() const noexcept { return started_; }
  /// Stops producing (the calls in progress still complete).
  void stop_producing();
  /// Every produced id handled (after stop_producing, once the calls in progress are done).
  bool everything_handled();
  health::app& app() noexcept { return *app_; }

 private:
  void post_to_loop(std::function<void()> f);
  asio::awaitable<void> produce();
  asio::awaitable<void> produce_one(std::string id);

  failover_process_options options_;
  std::unique_ptr<health::app> app_;
  std::unique_ptr<redis::client> commands_;
  std::unique_ptr<schedule::scheduler> scheduler_;
  std::mutex mutex_;
  std::map<std::string, component_times> times_;
  std::set<std::string> produced_;
  std::set<std::string> handled_;
  std::vector<std::chrono::steady_clock::time_point> handled_at_;
  std::atomic<bool> producing_{true};
  std::atomic<std::uint64_t> started_{0};
  std::atomic<int> producing_calls_{0};
  std::thread loop_;
};

/// CPU time (user + system) this process has used so far.
std::chrono::microseconds process_cpu_time();

}  // namespace corvo::test
