#pragma once
// The process runtime: one io_context, the application's root coroutine, and graceful
// shutdown on SIGINT/SIGTERM.
//
//   int main() {
//     corvo::runtime rt;
//     return corvo::exit_code(rt.run(app(rt.get_executor())));
//   }
//
// On the first SIGINT/SIGTERM (or request_stop()) the root coroutine receives terminal
// cancellation: components stop claiming and reading, let in-flight work finish, ack what
// finished and close. If the root has not finished `shutdown_deadline` later, the loop is
// stopped and run() reports deadline_exceeded. A second signal stops the loop at once.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <exception>
#include <string_view>
#include <vector>

namespace corvo {

namespace asio = boost::asio;

struct runtime_options {
  /// How long the root coroutine may take to finish after a stop request.
  std::chrono::milliseconds shutdown_deadline{10'000};
  /// Signals that request a graceful stop; empty installs no handler.
  std::vector<int> stop_signals{2 /* SIGINT */, 15 /* SIGTERM */};
};

enum class run_result {
  completed,          ///< the root coroutine returned without a stop request
  stopped,            ///< a stop was requested and the root finished within the deadline
  failed,             ///< the root coroutine threw (see runtime::failure())
  deadline_exceeded,  ///< a stop was requested and the root did not finish in time
};

std::string_view to_string(run_result result) noexcept;

/// 0 for completed/stopped, 1 for failed, 2 for deadline_exceeded.
int exit_code(run_result result) noexcept;

class runtime {
 public:
  explicit runtime(runtime_options options = {});
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  asio::io_context& context() noexcept { return context_; }
  asio::any_io_executor get_executor() noexcept { return context_.get_executor(); }

  /// Runs `root` on the calling thread (which becomes the loop thread) until it finishes, or
  /// until a stop request and then at most `shutdown_deadline`. Call once.
  run_result run(asio::awaitable<void> root);

  /// Requests a graceful stop, as a signal does. Thread-safe and async-signal-unsafe.
  void request_stop();

  /// The root coroutine's exception when run() returned failed.
  std::exception_ptr failure() const noexcept { return failure_; }

 private:
  struct stop_control;

  runtime_options options_;
  asio::io_context context_{1};
  std::exception_ptr failure_;
  stop_control* stop_ = nullptr;  // valid during run()
};

}  // namespace corvo
