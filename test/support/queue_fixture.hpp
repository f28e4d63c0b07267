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

/// A consumer's run() in the background, stopped by stop().
struct background_run {
  boost::asio::cancellation_signal signal;
  bool done = false;
  std::exception_ptr ended;

  template <class Consumer>
  void start(boost::asio::io_context& ctx, Consumer& consumer) {
    boost::asio::co_spawn(
        ctx, consumer.run(),
        boost::asio::bind_cancellation_slot(signal.slot(), [this](std::exception_ptr e) {
          done = true;
          ended = e;
        }));
  }

  /// Requests the stop; await stopped() for its end.
  void stop() { signal.emit(boost::asio::cancellation_type::terminal); }

  /// True when run() ended by the stop (operation_aborted), as it should.
  bool ended_by_stop() const { return done && corvo::is_operation_aborted(ended); }
};

}  // namespace corvo::test
