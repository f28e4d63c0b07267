#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/health/supervise.hpp>
#include <stdexcept>

namespace corvo::health {
namespace {

using steady = std::chrono::steady_clock;

std::chrono::milliseconds since(steady::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
}

asio::awaitable<void> timer_wait(asio::steady_timer& timer) {
  boost::system::error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

}  // namespace

std::string_view to_string(supervision_state s) noexcept {
  switch (s) {
    case supervision_state::waiting:
      return "waiting";
    case supervision_state::starting:
      return "starting";
    case supervision_state::running:
      return "running";
    case supervision_state::stopping:
      return "stopping";
    case supervision_state::stopped:
      return "stopped";
  }
  return "unknown";
}

supervision::supervision(component c, std::vector<dependency> dependencies, supervise_policy policy)
    : component_(std::move(c)), dependencies_(std::move(dependencies)), policy_(policy) {
  if (!component_.make) {
    throw std::invalid_argument("health::supervise: component '" + component_.name +
                                "' has no run function");
  }
  for (const auto& d : dependencies_) {
    if (d.owner() == nullptr || (monitor_ != nullptr && d.owner() != monitor_)) {
      throw std::invalid_argument("health::supervise: the dependencies of '" + component_.name +
                                  "' must belong to one monitor");
    }
    monitor_ = d.owner();
  }
}

void supervision::on_transition(transition_fn callback) {
  on_transition_.push_back(std::move(callback));
}

void supervision::on_stop_overrun(std::function<void(const supervision&)> callback) {
  on_overrun_ = std::move(callback);
}

const dependency* supervision::down_dependency() const {
  for (const auto& d : dependencies_) {
    if (d.state() == status::down) {
      return &d;
    }
  }
  return nullptr;
}

void supervision::transition(supervision_state next) {
  if (next == state_) {
    return;
  }
  const auto previous = std::exchange(state_, next);
  std::string why;
  if (const auto* d = down_dependency(); d != nullptr && next != supervision_state::running) {
    why = " (" + d->name() + " is down)";
  }
  CORVO_LOG(info, "health") << component_.name << ": " << to_string(previous) << " -> "
                            << to_string(next) << why;
  for (const auto& callback : on_transition_) {
    callback(*this, previous, next);
  }
}

// Sleeps on the monitor until no dependency is down. Returns false at once when none was.
asio::awaitable<bool> supervision::wait_until_usable() {
  bool waited = false;
  while (down_dependency() != nullptr) {
    waited = true;
    co_await monitor_->wait_changed(monitor_->version());
  }
  co_return waited;
}

namespace {

enum class watch_outcome { finished, dependency_down };

// While the component runs: returns when it finishes or a dependency goes down.
asio::awaitable<watch_outcome> watch(const supervision& s, monitor* m, task_group& group) {
  using namespace asio::experimental::awaitable_operators;
  for (;;) {
    if (s.down_dependency() != nullptr) {
      co_return watch_outcome::dependency_down;
    }
    if (m == nullptr) {
      co_await group.wait_idle();
      co_return watch_outcome::finished;
    }
    const auto seen = m->version();
    auto woke = co_await (group.wait_idle() || m->wait_changed(seen));
    if (woke.index() == 0) {
      co_return watch_outcome::finished;
    }
  }
}

// The restart delay; false when a dependency went down during it.
asio::awaitable<bool> delay_unless_down(const supervision& s, monitor* m,
                                        std::chrono::milliseconds delay) {
  using namespace asio::experimental::awaitable_operators;
  const auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex, delay);
  for (;;) {
    if (s.down_dependency() != nullptr) {
      co_return false;
    }
    if (m == nullptr) {
      co_await timer_wait(timer);
      co_return true;
    }
    const auto seen = m->version();
    auto woke = co_await (timer_wait(timer) || m->wait_changed(seen));
    if (woke.index() == 0) {
      co_return s.down_dependency() == nullptr;
    }
  }
}

}  // namespace

// Cancels the component and waits for it; an overrun is reported and still awaited.
asio::awaitable<void> supervision::stop_component(task_group& g) {
  const auto began = steady::now();
  g.cancel();
  std::exception_ptr failure;
  try {
    if (!co_await g.join_for(policy_.stop_timeout)) {
      ++stats_.stop_overruns;
      CORVO_LOG(error, "health") << component_.name << ": did not stop within "
                                 << policy_.stop_timeout.count() << " ms; still waiting for it";
      if (on_overrun_) {
        on_overrun_(*this);
      }
      co_await g.join();
    }
  } catch (...) {
    failure = std::current_exception();
  }
  stats_.last_stop = since(began);
  if (failure && !is_operation_aborted(failure)) {
    CORVO_LOG(warning, "health") << component_.name
                                 << ": failed while stopping: " << describe(failure);
  }
  CORVO_LOG(info, "health") << component_.name << ": stopped in " << stats_.last_stop.count()
                            << " ms";
}

asio::awaitable<void> supervision::run() {
  const auto ex = co_await asio::this_coro::executor;
  task_group group(ex);
  backoff delays(policy_.restart_backoff);
  bool restarting = false;
  std::exception_ptr ended_by;

  try {
    for (;;) {
      transition(supervision_state::waiting);
      co_await wait_until_usable();
      if (restarting) {
        transition(supervision_state::starting);
        if (!co_await delay_unless_down(*this, monitor_, delays.next())) {
          continue;
        }
      }
      ++stats_.starts;
      transition(supervision_state::running);
      const auto started_at = steady::now();
      co_await group.spawn(component_.make());
      const auto outcome = co_await watch(*this, monitor_, group);
      restarting = true;
      if (outcome == watch_outcome::dependency_down) {
        transition(supervision_state::stopping);
        ++stats_.stops;
        co_await stop_component(group);
        delays.reset();
        continue;
      }
      std::exception_ptr failure;
      try {
        co_await group.join();
      } catch (...) {
        failure = std::current_exception();
      }
      if (!failure) {
        transition(supervision_state::stopped);
        co_return;
      }
      if (down_dependency() != nullptr) {
        // It saw the failure before the monitor did: a stop, not a failure of its own.
        ++stats_.stops;
        CORVO_LOG(info, "health") << component_.name << ": ended while "
                                  << down_dependency()->name() << " is down: " << describe(failure);
        delays.reset();
        continue;
      }
      ++stats_.failures;
      CORVO_LOG(error, "health") << component_.name << ": failed: " << describe(failure);
      if (since(started_at) >= policy_.stable_after) {
        delays.reset();
      }
    }
  } catch (...) {
    ended_by = std::current_exception();
  }

  // Cancelled (or a wait failed): stop the component before reporting it. Reset the
  // cancellation state so the clean-up waits are not aborted by the same cancellation.
  const auto cancellation = co_await asio::this_coro::cancellation_state;
  const bool was_cancelled = cancellation.cancelled() != asio::cancellation_type::none;
  co_await asio::this_coro::reset_cancellation_state();
  if (group.in_flight() > 0) {
    transition(supervision_state::stopping);
    co_await stop_component(group);
  }
  transition(supervision_state::stopped);
  if (was_cancelled) {
    throw boost::system::system_error(asio::error::operation_aborted, "health::supervise");
  }
  std::rethrow_exception(ended_by);
}

asio::awaitable<void> supervise(component c, std::vector<dependency> dependencies,
                                supervise_policy policy) {
  supervision s(std::move(c), std::move(dependencies), policy);
  co_await s.run();
}

}  // namespace corvo::health
