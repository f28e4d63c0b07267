#pragma once
// The health monitor: the state of every dependency a process needs (a Redis server, the
// masters of a Redis Cluster, a stream, Kafka brokers, a database), kept current by probes
// and by failures the components report, so that components can be stopped and restarted
// by it (supervise.hpp).
//
//   health::monitor m(ex);
//   auto redis_dep = m.add("redis", health::redis_ping_probe(redis));    // probes.hpp
//   co_spawn(ex, m.run(), log_errors);                                  // probes until cancelled
//   ...
//   m.report_failure(redis_dep, "connection lost");                       // from a component
//
// States: `up` (probes succeed), `degraded` (it works but is impaired: a probe said so, e.g. a
// cluster with one master down, or it failed fewer than `failures_to_down` times in a row),
// `down` (`failures_to_down` consecutive failures; a probe that throws or does not answer
// within `timeout` is a failure). From `down`, `successes_to_up` consecutive successes bring
// it back. A dependency starts `down` ("not probed yet"): nothing that needs it starts
// before its first successful probe.
//
// Probing: one loop per probed dependency, every `interval`, each probe bounded by `timeout`
// (a hung server is down after one timeout). A failure reported by a component counts as a
// failed probe at once, and the next probe runs right away instead of after the interval.
// Probes never open connections of their own: they go through the application's clients,
// whose reconnects follow their own backoff, so a monitor probing a dead server adds no
// connection attempts.
//
// Passive dependencies have no probe: something else records their results (the Redis
// Cluster probe records one per slot owner; the app records one per component).
//
// Every transition is logged on the Boost.Log channel "health" (warning when a dependency
// goes down, info otherwise), counted, and wakes the coroutines waiting in
// wait_changed(). Threading: none; use the monitor from its executor.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::health {

namespace asio = boost::asio;

enum class status { up, degraded, down };

std::string_view to_string(status s) noexcept;

/// One probe's verdict: a state and what it saw (logged with the transition).
struct probe_result {
  status state = status::up;
  std::string detail;
};

/// One check of a dependency. A probe that throws counts as `down` with the exception's
/// text; the monitor bounds it by probe_options::timeout (terminal cancellation).
using probe_fn = std::function<asio::awaitable<probe_result>()>;

/// A probe from a predicate (true: up, false: down), for user-defined checks.
probe_fn probe_from(std::function<asio::awaitable<bool>()> healthy);

struct probe_options {
  /// Time between the end of one probe and the start of the next.
  std::chrono::milliseconds interval{1000};
  /// A probe without an answer after this long has failed.
  std::chrono::milliseconds timeout{500};
  /// Consecutive failures that make the dependency down (fewer: degraded). At least 1.
  unsigned failures_to_down = 1;
  /// Consecutive successes that bring a down dependency back. At least 1.
  unsigned successes_to_up = 1;
};

/// Counters of one dependency.
struct dependency_stats {
  std::uint64_t probes = 0;       ///< probe results recorded (passive: results recorded)
  std::uint64_t failures = 0;     ///< of which failures (reported ones included)
  std::uint64_t reports = 0;      ///< failures reported by components (report_failure)
  std::uint64_t transitions = 0;  ///< state changes
  std::uint64_t downs = 0;        ///< transitions to down
};

/// What the monitor knows about one dependency now.
struct dependency_report {
  std::string name;
  status state = status::down;
  /// The detail of the result that caused the last transition (or of the last failure).
  std::string detail;
  /// When the current state began.
  std::chrono::steady_clock::time_point since{};
  /// When the last probe result was recorded (zero: never).
  std::chrono::steady_clock::time_point last_result{};
  dependency_stats stats;
};

/// Readiness and liveness, for an HTTP health endpoint.
struct health_summary {
  /// The monitor runs and every probe loop has finished a probe recently (within two
  /// intervals plus its timeout, plus a second of slack): the process's loop is not stuck.
  bool live = false;
  /// No dependency is down.
  bool ready = false;
  std::vector<dependency_report> dependencies;

  /// {"live":…,"ready":…,"dependencies":[{"name","state","detail","since_ms",…}]}.
  boost::json::value to_json() const;
};

class monitor;

/// A handle to one dependency of a monitor; cheap to copy. Valid while the monitor lives.
class dependency {
 public:
  dependency() = default;

  const std::string& name() const;
  status state() const;
  /// The monitor it belongs to (null for a default-constructed handle).
  health::monitor* owner() const noexcept { return monitor_; }
  std::size_t index() const noexcept { return index_; }
  /// monitor::report_failure(*this, detail).
  void report_failure(std::string_view detail) const;

  friend bool operator==(const dependency&, const dependency&) = default;

 private:
  friend class monitor;
  dependency(health::monitor* m, std::size_t i) : monitor_(m), index_(i) {}
  health::monitor* monitor_ = nullptr;
  std::size_t index_ = 0;
};

class monitor {
 public:
  using executor_type = asio::any_io_executor;
  /// Called on every transition, on the monitor's executor, after the state changed.
  using transition_observer =
      std::function<void(const dependency&, status from, status to, std::string_view detail)>;

  explicit monitor(executor_type executor);
  ~monitor();
  monitor(const monitor&) = delete;
  monitor& operator=(const monitor&) = delete;

  executor_type get_executor() const noexcept;

  /// Registers a probed dependency. Names must be unique (std::invalid_argument otherwise);
  /// thresholds below 1 are std::invalid_argument. Call before run() (a dependency added
  /// while run() is active starts being probed at once as well).
  dependency add(std::string name, probe_fn probe, probe_options options = {});

  /// Registers a passive dependency: its results come from record(). Same rules as add().
  dependency add_passive(std::string name, probe_options options = {});

  /// The dependency named `name`; std::out_of_range if there is none.
  dependency find(std::string_view name) const;

  /// Records one result for `dep` (a passive dependency's result, or an extra result of a
  /// probed one), applying the thresholds.
  void record(const dependency& dep, probe_result result);

  /// A failure a component saw (connection lost, CLUSTERDOWN, a Kafka fatal error): counted
  /// as a failed probe now, and a probed dependency is probed again at once.
  void report_failure(const dependency& dep, std::string_view detail);

  /// Probes every probed dependency until cancelled (terminal): throws operation_aborted
  /// then. Call once at a time.
  asio::awaitable<void> run();

  status state(const dependency& dep) const;
  dependency_report report(const dependency& dep) const;
  /// Every dependency, in registration order.
  std::vector<dependency_report> state() const;
  health_summary summary() const;

  /// Increases on every transition of any dependency.
  std::uint64_t version() const noexcept;
  /// Waits until version() differs from `seen` (at once if it already does) and returns
  /// the new version. Cancellation (terminal): throws operation_aborted.
  asio::awaitable<std::uint64_t> wait_changed(std::uint64_t seen);

  /// Adds an observer of transitions (logging, metrics, tests).
  void on_transition(transition_observer observer);

  /// Number of dependencies registered.
  std::size_t size() const noexcept;

  struct impl;

 private:
  friend class dependency;
  std::shared_ptr<impl> impl_;
};

}  // namespace corvo::health
