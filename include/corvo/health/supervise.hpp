#pragma once
// Failover by cancellation: run a component while the dependencies it declares are not
// down, cancel it when one goes down, restart it when they are back.
//
//   health::component dispatcher{"dispatcher", [&] { return sched.run(); }};
//   co_await health::supervise(dispatcher, {redis_dep}, {.stop_timeout = 1s});
//
//   waiting ──deps not down──▶ starting ──backoff──▶ running ──a dep down──▶ stopping ─┐
//      ▲                                              │ failed                          │
//      └──────────────────────────────────────────────┴─────────────────────────────────┘
//
// A component is anything with a run() coroutine that runs until cancelled and honours
// terminal cancellation by stopping (scheduler::run, kafka_worker::run, a stream consumer,
// a subscriber, a queue consumer, user code); `make` creates a fresh run() coroutine for
// every start, and each start picks up where the last stopped because the state lives in
// Redis or Kafka (the dispatcher re-claims, leases keeping tasks safe meanwhile; the Kafka
// worker rejoins its group; a stream consumer re-reads its pending entries).
//
// Stopping: when a dependency goes down, the component gets terminal cancellation and must
// finish within `stop_timeout`. One that does not is reported (logged as an error on
// channel "health", counted in stop_overruns, on_stop_overrun called) and still awaited,
// so two instances never run at once; supervisions are independent coroutines, so an
// overrun holds up only its own component.
//
// While a dependency is down the supervision sleeps on the monitor (wait_changed): no
// polling, no connection attempts of its own. When every dependency is up (or degraded)
// again, it waits a restart delay (restart_backoff, growing while restarts keep failing)
// and starts the component again; a dependency going down during the delay sends it back
// to waiting. A component that fails on its own (throws) is restarted after the same kind
// of delay; one that returns normally ends the supervision.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/health/monitor.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace corvo {
class task_group;
}

namespace corvo::health {

/// A long-running component: a name and a factory of its run() coroutine.
struct component {
  std::string name;
  std::function<asio::awaitable<void>()> make;
};

struct supervise_policy {
  /// How long a cancelled component may take to finish before it is reported.
  std::chrono::milliseconds stop_timeout{1000};
  /// Delays before a restart (after recovery, or after the component failed on its own).
  backoff_policy restart_backoff{std::chrono::milliseconds{50}, std::chrono::milliseconds{5000}};
  /// A run at least this long resets the restart delays.
  std::chrono::milliseconds stable_after{10'000};
};

enum class supervision_state { waiting, starting, running, stopping, stopped };

std::string_view to_string(supervision_state s) noexcept;

struct supervision_stats {
  std::uint64_t starts = 0;               ///< component starts (the first included)
  std::uint64_t stops = 0;                ///< cancellations because a dependency went down
  std::uint64_t failures = 0;             ///< component exits with an exception of its own
  std::uint64_t stop_overruns = 0;        ///< stops that took longer than stop_timeout
  std::chrono::milliseconds last_stop{};  ///< how long the last stop took
};

/// One supervised component; supervise() is the one-call form.
class supervision {
 public:
  using transition_fn =
      std::function<void(const supervision&, supervision_state from, supervision_state to)>;

  /// Every dependency must belong to the same monitor (std::invalid_argument otherwise);
  /// an empty list runs the component with only failure restarts.
  supervision(component c, std::vector<dependency> dependencies, supervise_policy policy = {});

  /// Supervises until the component returns normally (then returns) or this coroutine is
  /// cancelled (terminal): the component is then cancelled and awaited (stop_timeout, then
  /// reported, still awaited) and operation_aborted is thrown.
  asio::awaitable<void> run();

  /// Called on every state change (on the executor of run()).
  void on_transition(transition_fn callback);
  /// Called when a stop exceeds stop_timeout (after the report is logged).
  void on_stop_overrun(std::function<void(const supervision&)> callback);

  supervision_state state() const noexcept { return state_; }
  const supervision_stats& stats() const noexcept { return stats_; }
  const std::string& name() const noexcept { return component_.name; }
  const std::vector<dependency>& dependencies() const noexcept { return dependencies_; }
  const supervise_policy& policy() const noexcept { return policy_; }
  /// The first dependency that is down now, if any (null when none is).
  const dependency* down_dependency() const;

 private:
  asio::awaitable<bool> wait_until_usable();
  asio::awaitable<void> stop_component(task_group& group);
  void transition(supervision_state next);

  component component_;
  std::vector<dependency> dependencies_;
  supervise_policy policy_;
  monitor* monitor_ = nullptr;
  supervision_state state_ = supervision_state::stopped;
  supervision_stats stats_;
  std::vector<transition_fn> on_transition_;
  std::function<void(const supervision&)> on_overrun_;
};

/// Runs `c` under `dependencies` with `policy` until cancelled; see supervision.
asio::awaitable<void> supervise(component c, std::vector<dependency> dependencies,
                                supervise_policy policy = {});

}  // namespace corvo::health
