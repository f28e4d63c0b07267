#pragma once
// Supervision: run a component while a health probe says its dependency is up.
//
//   probing ──probe ok──▶ running ──probe fails──▶ stopping ──▶ probing
//      ▲                     │ component throws
//      └──── backing_off ◀───┘
//
// The component is a coroutine that runs until cancelled (a stream listener, a dispatcher).
// While it runs, the supervisor probes every `probe_interval`; a failed probe (false, an
// exception, or no answer within `probe_timeout`) cancels the component (terminal) and waits
// up to `stop_timeout` for it to finish; one that overruns is logged and counted, and still
// awaited, so two instances never run at once. Then the supervisor probes with backoff and
// restarts the component on the first successful probe. A component that fails on its own
// is restarted after a backoff delay (growing while it keeps failing). A component that
// returns normally ends the supervision. Every transition is logged (channel "supervisor")
// and counted.

#include <corvo/core/backoff.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace corvo {

namespace asio = boost::asio;

class task_group;

enum class supervisor_state { probing, running, stopping, backing_off, stopped };

std::string_view to_string(supervisor_state state) noexcept;

struct supervisor_options {
  /// Names the component in logs.
  std::string name = "component";
  /// Time between probes while the component runs.
  std::chrono::milliseconds probe_interval{1000};
  /// A probe that takes longer counts as failed.
  std::chrono::milliseconds probe_timeout{1000};
  /// Delays between failed probes while down, and before restarting a failed component.
  backoff_policy restart_backoff{std::chrono::milliseconds{100}, std::chrono::milliseconds{10'000}};
  /// How long a cancelled component may take to finish before it is reported as overrunning.
  std::chrono::milliseconds stop_timeout{5000};
};

struct supervisor_stats {
  std::uint64_t starts = 0;              ///< component starts (first start included)
  std::uint64_t stops = 0;               ///< component cancellations by the supervisor
  std::uint64_t component_failures = 0;  ///< component exits with an exception
  std::uint64_t probe_failures = 0;      ///< probes that said unhealthy, threw or timed out
  std::uint64_t stop_overruns = 0;       ///< stops that took longer than stop_timeout
};

class supervisor {
 public:
  /// Creates a fresh component coroutine for each start.
  using component_fn = std::function<asio::awaitable<void>()>;
  /// True when the dependency is healthy.
  using probe_fn = std::function<asio::awaitable<bool>()>;
  using transition_fn = std::function<void(supervisor_state from, supervisor_state to)>;

  supervisor(component_fn component, probe_fn probe, supervisor_options options = {});

  /// Called on every state change, on the supervisor's executor.
  void on_transition(transition_fn callback) { on_transition_ = std::move(callback); }

  /// Supervises until the component returns normally (then returns) or run() is cancelled.
  /// Cancellation (terminal): the component is cancelled and awaited (bounded by
  /// stop_timeout, then reported), then system_error(operation_aborted) is thrown.
  asio::awaitable<void> run();

  supervisor_state state() const noexcept { return state_; }
  const supervisor_stats& stats() const noexcept { return stats_; }
  const supervisor_options& options() const noexcept { return options_; }

 private:
  enum class watch_outcome { component_finished, probe_failed };
  asio::awaitable<bool> probe_once();
  asio::awaitable<watch_outcome> watch(task_group& group);
  void transition(supervisor_state next);

  component_fn component_;
  probe_fn probe_;
  supervisor_options options_;
  transition_fn on_transition_;
  supervisor_state state_ = supervisor_state::stopped;
  supervisor_stats stats_;
};

/// Runs `component` under `probe` until cancelled; see supervisor.
asio::awaitable<void> supervise(supervisor::component_fn component, supervisor::probe_fn probe,
                                supervisor_options options = {});

}  // namespace corvo
