#pragma once
// In-process queue tests: a redis-server, a client on an io_context, and a way to run a
// queue consumer in the background and stop it as a SIGTERM would (terminal cancellation).

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/redis/client.hpp>
#include <exception>
#include <memory>
#include <string>

#include "support/eventually.hpp"

namespace corvo::test {

/// A consumer's run() in the background, stopped by stop(). The signal and the outcome live in
/// a state the run's completion shares, so a test that leaves its scope early (a failed
/// assertion) neither frees the signal under the running coroutine nor lets the completion
/// write to a dead object. (The destructor does not stop the run: the io_context may be gone.)
struct background_run {
  struct state {
    boost::asio::cancellation_signal signal;
    bool done = false;
    std::exception_ptr ended;
  };
  std::shared_ptr<state> shared = std::make_shared<state>();
  bool& done = shared->done;
  std::exception_ptr& ended = shared->ended;

  background_run() = default;
  background_run(const background_run&) = delete;
  background_run& operator=(const background_run&) = delete;

  template <class Consumer>
  void start(boost::asio::io_context& ctx, Consumer& consumer) {
    boost::asio::co_spawn(ctx, consumer.run(),
                          boost::asio::bind_cancellation_slot(shared->signal.slot(),
                                                              [s = shared](std::exception_ptr e) {
                                                                s->done = true;
                                                                s->ended = e;
                                                              }));
  }

  /// Requests the stop; await stopped() for its end.
  void stop() { shared->signal.emit(boost::asio::cancellation_type::terminal); }

  /// True when run() ended by the stop (operation_aborted), as it should.
  bool ended_by_stop() const { return shared->done && corvo::is_operation_aborted(shared->ended); }
};

}  // namespace corvo::test
