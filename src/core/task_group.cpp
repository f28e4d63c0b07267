#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/core/detail/complete_later.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <list>
#include <string>
#include <utility>

namespace corvo {

namespace {

using boost::system::error_code;
using wait_handler = asio::any_completion_handler<void(error_code)>;

std::string summarize(const std::vector<std::exception_ptr>& errors) {
  std::string text = std::to_string(errors.size()) + " task(s) failed";
  if (!errors.empty()) {
    text += "; first: " + describe(errors.front());
  }
  return text;
}

}  // namespace

task_group_error::task_group_error(std::vector<std::exception_ptr> errors)
    : std::runtime_error(summarize(errors)), errors_(std::move(errors)) {}

// The shared state outlives the task_group object while children are still running: each
// child's completion handler holds a reference.
struct task_group::state : std::enable_shared_from_this<state> {
  struct child {
    asio::cancellation_signal signal;
  };

  // A suspended join()/wait_idle()/spawn(). `cancels_children` marks join(): its
  // cancellation is forwarded to the children instead of ending the wait. `done` guards a
  // cancellation handler that fires after the waiter was already completed.
  struct waiter {
    wait_handler handler;
    bool cancels_children = false;
    bool done = false;
  };
  using waiter_list = std::list<std::shared_ptr<waiter>>;

  state(executor_type ex, task_group_options opts) : executor(std::move(ex)), options(opts) {}

  executor_type executor;
  task_group_options options;
  std::list<child> children;
  std::size_t running = 0;
  bool is_stopping = false;
  bool join_cancelled = false;
  std::vector<std::exception_ptr> failures;
  waiter_list idle_waiters;
  waiter_list slot_waiters;

  void start(asio::awaitable<void> body) {
    auto it = children.emplace(children.end());
    ++running;
    asio::co_spawn(executor, std::move(body),
                   asio::bind_cancellation_slot(
                       it->signal.slot(), [self = shared_from_this(), it](std::exception_ptr e) {
                         self->on_child_done(it, std::move(e));
                       }));
  }

  void on_child_done(std::list<child>::iterator it, std::exception_ptr e) {
    children.erase(it);
    --running;
    if (e && !(is_stopping && is_operation_aborted(e))) {
      failures.push_back(e);
      if (options.on_failure == failure_policy::fail_fast) {
        cancel(asio::cancellation_type::terminal);
      }
    }
    wake(slot_waiters);
    if (running == 0) {
      wake(idle_waiters,
           join_cancelled ? error_code{asio::error::operation_aborted} : error_code{});
    }
  }

  void cancel(asio::cancellation_type type) {
    is_stopping = true;
    // Emitting may complete a child synchronously and erase it; step past it first.
    for (auto it = children.begin(); it != children.end();) {
      auto& signal = (it++)->signal;
      signal.emit(type);
    }
    wake(slot_waiters);
  }

  // Completes the waiters (on their own executors, never inline): join() waiters with
  // `join_result`, the others with success.
  void wake(waiter_list& waiters, error_code join_result = {}) {
    auto woken = std::exchange(waiters, {});
    for (auto& w : woken) {
      auto slot = asio::get_associated_cancellation_slot(w->handler);
      if (slot.is_connected()) {
        slot.clear();
      }
      complete(*w, w->cancels_children ? join_result : error_code{});
    }
  }

  void complete(waiter& w, error_code ec) {
    w.done = true;
    detail::complete_later(executor, std::move(w.handler), ec);
  }

  // Suspends `handler` in `waiters` until woken. Cancellation either ends the wait with
  // operation_aborted, or (join) is forwarded to the children while the wait goes on.
  void suspend(waiter_list& waiters, wait_handler handler, bool cancels_children) {
    auto w = std::make_shared<waiter>(waiter{std::move(handler), cancels_children});
    waiters.push_back(w);
    auto slot = asio::get_associated_cancellation_slot(w->handler);
    if (!slot.is_connected()) {
      return;
    }
    slot.assign([self = shared_from_this(), &waiters, w](asio::cancellation_type type) {
      if (w->done) {
        return;
      }
      if (w->cancels_children) {
        self->join_cancelled = true;
        self->cancel(type);
        return;
      }
      waiters.remove(w);
      self->complete(*w, asio::error::operation_aborted);
    });
  }

  asio::awaitable<void> await_wake(waiter_list& waiters, bool cancels_children, error_code& ec) {
    // A named initiation object, not a capturing lambda: GCC 12 destroys lambda temporaries
    // of a co_await expression twice.
    struct initiation {
      std::shared_ptr<state> self;
      waiter_list* waiters;
      bool cancels_children;
      void operator()(wait_handler handler) const {
        self->suspend(*waiters, std::move(handler), cancels_children);
      }
    };
    initiation init{shared_from_this(), &waiters, cancels_children};
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    co_await asio::async_initiate<decltype(token), void(error_code)>(init, token);
  }

  // Reports the outcome of a completed join and resets the group for reuse.
  void finish_join(error_code ec) {
    auto recorded = std::exchange(failures, {});
    is_stopping = false;
    join_cancelled = false;
    if (ec) {
      throw boost::system::system_error(ec, "task_group::join");
    }
    if (recorded.empty()) {
      return;
    }
    if (options.on_failure == failure_policy::fail_fast) {
      std::rethrow_exception(recorded.front());
    }
    throw task_group_error(std::move(recorded));
  }
};

task_group::task_group(executor_type executor, task_group_options options)
    : state_(std::make_shared<state>(std::move(executor), options)) {}

task_group::~task_group() {
  if (state_->running > 0) {
    CORVO_LOG(error, "task_group") << "destroyed with " << state_->running
                                   << " running child(ren); they are cancelled, not joined";
    state_->cancel(asio::cancellation_type::terminal);
  }
}

task_group::executor_type task_group::get_executor() const noexcept {
  return state_->executor;
}

asio::awaitable<bool> task_group::spawn(asio::awaitable<void> child) {
  auto self = state_;
  const auto limit = self->options.max_in_flight;
  while (!self->is_stopping && limit != 0 && self->running >= limit) {
    error_code ec;
    co_await self->await_wake(self->slot_waiters, false, ec);
    if (ec) {
      throw boost::system::system_error(ec, "task_group::spawn");
    }
  }
  if (self->is_stopping) {
    co_return false;
  }
  self->start(std::move(child));
  co_return true;
}

bool task_group::try_spawn(asio::awaitable<void>& child) {
  const auto limit = state_->options.max_in_flight;
  if (state_->is_stopping || (limit != 0 && state_->running >= limit)) {
    return false;
  }
  state_->start(std::move(child));
  return true;
}

asio::awaitable<void> task_group::join() {
  auto self = state_;
  error_code ec;
  if (self->running > 0) {
    co_await self->await_wake(self->idle_waiters, true, ec);
  }
  self->finish_join(ec);
}

asio::awaitable<void> task_group::wait_idle() {
  auto self = state_;
  if (self->running == 0) {
    co_return;
  }
  error_code ec;
  co_await self->await_wake(self->idle_waiters, false, ec);
  if (ec) {
    throw boost::system::system_error(ec, "task_group::wait_idle");
  }
}

asio::awaitable<bool> task_group::join_for(std::chrono::steady_clock::duration timeout) {
  using namespace asio::experimental::awaitable_operators;
  if (state_->running > 0) {
    asio::steady_timer timer(state_->executor, timeout);
    bool cancelled = false;
    try {
      auto outcome = co_await (wait_idle() || timer.async_wait(asio::use_awaitable));
      if (outcome.index() == 1 && state_->running > 0) {
        co_return false;
      }
    } catch (...) {
      // Only cancellation ends both waits (the operator then throws multiple_exceptions).
      cancelled = true;
    }
    if (cancelled) {
      // As join() under cancellation: the children are cancelled and still waited for, then
      // operation_aborted; the group never goes away with children running.
      co_await asio::this_coro::reset_cancellation_state();
      cancel();
      try {
        co_await join();
      } catch (...) {
      }
      throw boost::system::system_error(asio::error::operation_aborted, "task_group::join_for");
    }
  }
  co_await join();
  co_return true;
}

void task_group::cancel(asio::cancellation_type type) {
  state_->cancel(type);
}

std::size_t task_group::in_flight() const noexcept {
  return state_->running;
}

bool task_group::stopping() const noexcept {
  return state_->is_stopping;
}

const std::vector<std::exception_ptr>& task_group::failures() const noexcept {
  return state_->failures;
}

}  // namespace corvo
