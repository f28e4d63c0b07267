#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/supervisor.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

namespace corvo {
namespace {


}  // namespace

std::string_view to_string(supervisor_state state) noexcept {
  switch (state) {
    case supervisor_state::probing: return "probing";
    case supervisor_state::running: return "running";
    case supervisor_state::stopping: return "stopping";
    case supervisor_state::backing_off: return "backing_off";
    case supervisor_state::stopped: return "stopped";
  }
  return "unknown";
}

supervisor::supervisor(component_fn component, probe_fn probe, supervisor_options options)
    : component_(std::move(component)), probe_(std::move(probe)), options_(std::move(options)) {}

void supervisor::transition(supervisor_state next) {
  if (next == state_) {
    return;
  }
  const auto previous = std::exchange(state_, next);
  CORVO_LOG(info, "supervisor") << options_.name << ": " << to_string(previous) << " -> "
                                << to_string(next);
  if (on_transition_) {
    on_transition_(previous, next);
  }
}

asio::awaitable<bool> supervisor::probe_once() {
  std::exception_ptr failure;
  bool healthy = false;
  try {
    healthy = co_await with_timeout(probe_(), options_.probe_timeout);
  } catch (...) {
    failure = std::current_exception();
  }
  // A probe interrupted by our own cancellation says nothing about the dependency.
  const auto cancellation = co_await asio::this_coro::cancellation_state;
  if (cancellation.cancelled() != asio::cancellation_type::none) {
    throw boost::system::system_error(asio::error::operation_aborted, "supervisor probe");
  }
  if (!healthy) {
    ++stats_.probe_failures;
    CORVO_LOG(warning, "supervisor")
        << options_.name << ": probe failed"
        << (failure ? ": " + describe(failure) : std::string(": unhealthy"));
  }
  co_return healthy;
}

namespace {

// Cancels the running component and waits for it: up to stop_timeout, then (reported) for
// as long as it takes, so a restart never overlaps the old instance.
asio::awaitable<void> stop_component(task_group& group, const supervisor_options& options,
                                     supervisor_stats& stats) {
  group.cancel();
  ++stats.stops;
  std::exception_ptr failure;
  try {
    if (!co_await group.join_for(options.stop_timeout)) {
      ++stats.stop_overruns;
      CORVO_LOG(error, "supervisor") << options.name << ": did not stop within "
                                     << options.stop_timeout.count() << " ms; still waiting";
      co_await group.join();
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    CORVO_LOG(warning, "supervisor")
        << options.name << ": failed while stopping: " << describe(failure);
  }
}

}  // namespace

// Runs while the component runs: probes every probe_interval, returns early when the
// component finishes.
asio::awaitable<supervisor::watch_outcome> supervisor::watch(task_group& group) {
  using namespace asio::experimental::awaitable_operators;
  for (;;) {
    const auto executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor, options_.probe_interval);
    auto woke = co_await (group.wait_idle() || timer.async_wait(asio::use_awaitable));
    if (woke.index() == 0) {
      co_return watch_outcome::component_finished;
    }
    if (!co_await probe_once()) {
      co_return watch_outcome::probe_failed;
    }
  }
}

asio::awaitable<void> supervisor::run() {
  const auto executor = co_await asio::this_coro::executor;
  task_group group(executor);
  backoff probe_delays(options_.restart_backoff);
  backoff restart_delays(options_.restart_backoff);
  std::exception_ptr ended_by;
  try {
    for (;;) {
      transition(supervisor_state::probing);
      while (!co_await probe_once()) {
        co_await sleep_for(probe_delays.next());
      }
      probe_delays.reset();

      transition(supervisor_state::running);
      ++stats_.starts;
      co_await group.spawn(component_());
      const auto outcome = co_await watch(group);
      if (outcome == watch_outcome::probe_failed) {
        transition(supervisor_state::stopping);
        co_await stop_component(group, options_, stats_);
        restart_delays.reset();
        continue;
      }

      // The component finished by itself: a normal return ends the supervision, a failure
      // is restarted after a growing delay.
      std::exception_ptr failure;
      try {
        co_await group.join();
      } catch (...) {
        failure = std::current_exception();
      }
      if (!failure) {
        transition(supervisor_state::stopped);
        co_return;
      }
      ++stats_.component_failures;
      CORVO_LOG(error, "supervisor") << options_.name << ": failed: " << describe(failure);
      transition(supervisor_state::backing_off);
      co_await sleep_for(restart_delays.next());
    }
  } catch (...) {
    ended_by = std::current_exception();
  }

  // run() was cancelled (or a wait failed): stop the component before reporting it. Reset
  // the cancellation state so the clean-up waits are not aborted by the same cancellation.
  // (Reading the state directly: in Asio 1.26 even co_await of a nested awaitable throws
  // once the coroutine is cancelled.)
  const auto cancellation = co_await asio::this_coro::cancellation_state;
  const bool was_cancelled = cancellation.cancelled() != asio::cancellation_type::none;
  co_await asio::this_coro::reset_cancellation_state();
  if (group.in_flight() > 0) {
    transition(supervisor_state::stopping);
    co_await stop_component(group, options_, stats_);
  }
  transition(supervisor_state::stopped);
  if (was_cancelled) {
    // Report the cancellation itself, not how it surfaced (e.g. multiple_exceptions from a
    // race whose both sides were cancelled).
    throw boost::system::system_error(asio::error::operation_aborted, "supervisor::run");
  }
  std::rethrow_exception(ended_by);
}

asio::awaitable<void> supervise(supervisor::component_fn component, supervisor::probe_fn probe,
                                supervisor_options options) {
  supervisor s(std::move(component), std::move(probe), std::move(options));
  co_await s.run();
}

}  // namespace corvo
