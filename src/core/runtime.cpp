#include <corvo/core/log.hpp>
#include <corvo/core/runtime.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/system_error.hpp>

#include <cstring>

namespace corvo {

std::string_view to_string(run_result result) noexcept {
  switch (result) {
    case run_result::completed: return "completed";
    case run_result::stopped: return "stopped";
    case run_result::failed: return "failed";
    case run_result::deadline_exceeded: return "deadline_exceeded";
  }
  return "unknown";
}

int exit_code(run_result result) noexcept {
  switch (result) {
    case run_result::completed:
    case run_result::stopped:
      return 0;
    case run_result::failed:
      return 1;
    case run_result::deadline_exceeded:
      return 2;
  }
  return 1;
}

// Everything run() needs while the loop runs; lives on run()'s stack.
struct runtime::stop_control {
  stop_control(asio::io_context& context, const runtime_options& opts)
      : context(context), options(opts), signals(context), deadline(context) {}

  asio::io_context& context;
  const runtime_options& options;
  asio::cancellation_signal root_cancel;
  asio::signal_set signals;
  asio::steady_timer deadline;
  bool root_done = false;
  bool stop_requested = false;
  bool deadline_hit = false;

  void arm_signals() {
    signals.async_wait([this](boost::system::error_code ec, int signal_number) {
      if (ec) {
        return;
      }
      CORVO_LOG(info, "runtime") << "received " << ::strsignal(signal_number);
      begin_stop();
      arm_signals();
    });
  }

  void begin_stop() {
    if (root_done) {
      return;
    }
    if (stop_requested) {
      CORVO_LOG(warning, "runtime") << "second stop request: stopping the loop now";
      deadline_hit = true;
      context.stop();
      return;
    }
    stop_requested = true;
    CORVO_LOG(info, "runtime") << "graceful shutdown, deadline "
                               << options.shutdown_deadline.count() << " ms";
    deadline.expires_after(options.shutdown_deadline);
    deadline.async_wait([this](boost::system::error_code ec) {
      if (ec || root_done) {
        return;
      }
      CORVO_LOG(error, "runtime") << "shutdown deadline exceeded; stopping the loop";
      deadline_hit = true;
      context.stop();
    });
    root_cancel.emit(asio::cancellation_type::terminal);
  }
};

runtime::runtime(runtime_options options) : options_(std::move(options)) {}

run_result runtime::run(asio::awaitable<void> root) {
  stop_control control(context_, options_);
  stop_ = &control;
  for (int signal_number : options_.stop_signals) {
    control.signals.add(signal_number);
  }
  if (!options_.stop_signals.empty()) {
    control.arm_signals();
  }

  asio::co_spawn(context_, std::move(root),
                 asio::bind_cancellation_slot(
                     control.root_cancel.slot(), [this, &control](std::exception_ptr e) {
                       control.root_done = true;
                       failure_ = std::move(e);
                       // The root owns all structured work; stop waiting for signals and
                       // the deadline so the loop can return.
                       boost::system::error_code ignored;
                       control.signals.cancel(ignored);
                       control.deadline.cancel();
                     }));
  context_.run();
  stop_ = nullptr;

  if (control.deadline_hit && !control.root_done) {
    return run_result::deadline_exceeded;
  }
  if (failure_) {
    bool aborted = false;
    try {
      std::rethrow_exception(failure_);
    } catch (const boost::system::system_error& e) {
      aborted = e.code() == asio::error::operation_aborted;
    } catch (...) {
    }
    if (aborted && control.stop_requested) {
      failure_ = nullptr;
      return run_result::stopped;
    }
    return run_result::failed;
  }
  return control.stop_requested ? run_result::stopped : run_result::completed;
}

void runtime::request_stop() {
  asio::post(context_, [this] {
    if (stop_ != nullptr) {
      stop_->begin_stop();
    }
  });
}

}  // namespace corvo
