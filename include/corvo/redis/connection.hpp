#pragma once
// One Redis connection with automatic pipelining, on one executor.
//
//   redis::connection conn(ex, redis::config::from_url("redis://127.0.0.1:6379"));
//   co_spawn(ex, conn.run(), log_errors);            // connects, reconnects, until cancel()
//   redis::request req;
//   req.push("SET", "k", "v");
//   req.push("GET", "k");
//   redis::response<std::string, std::optional<std::string>> resp;
//   co_await conn.exec(req, resp);                   // std::get<1>(resp).value() == "v"
//
// Pipelining: requests from any number of coroutines are queued; while one write is on the
// wire, the requests issued meanwhile are coalesced into the next write. Replies are matched
// to requests in FIFO order. RESP3 pushes (pub/sub messages, subscription confirmations) are
// delivered to `receive()` and never consume a request's reply.
//
// Connection life: run() resolves, connects (TLS for rediss://), sends HELLO 3 with AUTH and
// SETNAME, SELECTs the database, restores SUBSCRIBE/PSUBSCRIBE/SSUBSCRIBE state, then serves
// requests. On a loss it reconnects with backoff. An idle connection is checked by PING; a
// busy one by the reply deadline (config::request_timeout). SUBSCRIBE & co. complete when
// the server has confirmed every channel (or refused the command).
//
// Failure rules for a request (the completion's error_code):
// - written, then the connection was lost: error::connection_lost (it may or may not have
//   run), unless the request is marked idempotent: then it is written again after reconnect;
// - not written yet: it waits for the reconnection, or fails at once with
//   error::not_connected when marked fail_if_not_connected;
// - no reply within config::request_timeout (plus the block time of a blocking command,
//   request::block_time()): every written request fails with error::request_timeout (it may
//   or may not have run; idempotent ones too) and the connection is re-established;
// - reset() by the owner (it knows the server stopped answering): the same, with
//   error::connection_reset;
// - cancel() or the end of run(): error::connection_closed, except a written request that
//   is not idempotent: error::connection_lost (it may have run); later requests fail with
//   connection_closed;
// - a subscribe-family command the server refuses (e.g. NOPERM): error::subscription_refused
//   (the server's text is logged); the other commands of the pipeline are unaffected;
// - wrong password / unknown user: run() ends with error::auth_failed, and so do the requests;
// - a blocking command on a shared connection: error::blocking_on_shared_connection.
// A written request never waits longer than its reply deadline; an unwritten one waits for
// the reconnection: to bound that wait, race exec() with a timer (corvo::with_timeout).
//
// Queue bound (back-pressure): at most config::max_queued_requests requests are queued
// (unwritten + awaiting replies); exec() beyond that waits, in FIFO order, until a reply
// or a failure makes room. Such a waiting request can be cancelled (it is never sent).
//
// Cancellation of exec() (terminal or partial): a request not yet written is removed; one
// already written completes at once with operation_aborted and its replies are read and
// discarded when they arrive, so the other requests' replies stay matched. Total
// cancellation is honoured only before the request is written.
//
// Thread safety: none; use the connection from its executor (one thread or a strand).

#include <array>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <corvo/redis/adapter.hpp>
#include <corvo/redis/config.hpp>
#include <corvo/redis/request.hpp>
#include <corvo/redis/response.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

namespace corvo::redis {

namespace asio = boost::asio;

/// Upper bounds of the request latency buckets of connection_stats, ascending (a last bucket,
/// not listed, holds the slower requests).
inline constexpr std::array<std::chrono::microseconds, 14> request_latency_bounds{
    std::chrono::microseconds(100),       std::chrono::microseconds(250),
    std::chrono::microseconds(500),       std::chrono::microseconds(1'000),
    std::chrono::microseconds(2'500),     std::chrono::microseconds(5'000),
    std::chrono::microseconds(10'000),    std::chrono::microseconds(25'000),
    std::chrono::microseconds(50'000),    std::chrono::microseconds(100'000),
    std::chrono::microseconds(250'000),   std::chrono::microseconds(500'000),
    std::chrono::microseconds(1'000'000), std::chrono::microseconds(5'000'000)};

/// Counters of one connection, for logs, metrics and tests.
struct connection_stats {
  std::uint64_t connects = 0;          ///< successful connections (handshake included)
  std::uint64_t connect_failures = 0;  ///< attempts that failed before serving requests
  std::uint64_t writes = 0;            ///< socket writes (less than requests when coalescing)
  std::uint64_t requests = 0;          ///< requests completed successfully
  std::uint64_t replies = 0;           ///< replies read (pushes excluded)
  std::uint64_t pushes = 0;            ///< pushes read
  std::uint64_t health_check_failures = 0;
  std::uint64_t request_timeouts = 0;       ///< connections dropped for a missed reply deadline
  std::uint64_t resets = 0;                 ///< connections dropped by reset()
  std::uint64_t subscriptions_refused = 0;  ///< SUBSCRIBE & co. answered with an error
  std::uint64_t waits_for_room = 0;         ///< requests that waited for max_queued_requests
  /// Requests completed with an error (connection lost or closed, request timeout, not
  /// connected, a reply that did not fit the response, ...); cancellations by the caller are
  /// not counted. Error replies of the server are replies, not errors.
  std::uint64_t request_errors = 0;
  /// Latency of the requests that succeeded, from exec() (waiting for room and for the
  /// connection included) to the read that completed them: element i counts those within
  /// request_latency_bounds[i] (and above the bound before it); the last element, those
  /// slower than every bound.
  std::array<std::uint64_t, request_latency_bounds.size() + 1> latency_counts{};
  /// The sum of those latencies.
  std::chrono::microseconds latency_sum{0};

  /// Adds `other`'s counts to these (e.g. the connections of a cluster client).
  connection_stats& operator+=(const connection_stats& other) noexcept;
};

class connection {
 public:
  using executor_type = asio::any_io_executor;
  /// Completion of exec: the error, and the number of reply bytes read.
  using exec_handler = asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;
  /// Completion of receive: the error, and the push as nodes (the first is the push itself).
  using push_handler =
      asio::any_completion_handler<void(boost::system::error_code, generic_response)>;
  /// Takes every push synchronously instead of receive(): see set_push_sink.
  using push_sink = std::function<void(generic_response&&)>;

  connection(executor_type executor, config cfg);
  /// Cancels run() and fails the requests still waiting (connection_closed).
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  executor_type get_executor() const noexcept;
  const config& get_config() const noexcept;

  /// Keeps the connection up until cancel() is called or the awaiting coroutine is cancelled
  /// (then returns normally / throws operation_aborted). Throws system_error(auth_failed) with
  /// the server's text when the credentials are refused. Call once per connection object.
  asio::awaitable<void> run();

  /// Stops run(), closes the socket and fails every waiting request with connection_closed.
  void cancel();

  /// Drops the established connection now, as a missed reply deadline would, for an owner
  /// that has learnt by other means that the server stopped answering (a health probe's
  /// timeout: SIGSTOP, a frozen VM, where the socket stays open and the connection looks
  /// up): every request written and not yet answered fails with error::connection_reset
  /// (it may or may not have run; idempotent ones too), unwritten ones follow the rules of a
  /// lost connection (fail_if_not_connected: error::not_connected at once; else they wait for
  /// the reconnection), and run() reconnects after its backoff. From this call on the
  /// connection is not connected. `reason` is logged. A connection that is not established
  /// (being set up, waiting to reconnect, stopped) is left alone: nothing is written there,
  /// and dropping it would only add a connection attempt. Counted in stats().resets.
  void reset(std::string_view reason);

  /// True while the connection is established and handshaken.
  bool is_connected() const noexcept;

  const connection_stats& stats() const noexcept;

  /// Requests counted against config::max_queued_requests: not yet written, or written and
  /// still awaiting replies (requests waiting for room are not counted).
  std::size_t queued_requests() const noexcept;

  /// How long the request at the head has been waiting for its next reply (since the last
  /// reply or since it was written); zero when nothing is in flight. A hung server shows a
  /// growing value long before request_timeout declares it lost.
  std::chrono::steady_clock::duration reply_wait() const noexcept;

  /// Executes `req` and adapts its replies into `resp` (a `response<...>` with one slot per
  /// reply, a `generic_response`, or `ignore`). `req` and `resp` must outlive the
  /// operation. Server error replies are stored in the response's slots, not reported here.
  template <class CompletionToken>
  auto async_exec(const request& req, any_adapter resp, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(boost::system::error_code, std::size_t)>(
        exec_initiation{this}, token, &req, resp);
  }

  /// Awaitable async_exec: returns the reply bytes read; throws system_error on failure.
  asio::awaitable<std::size_t> exec(const request& req, any_adapter resp = ignore) {
    return async_exec(req, resp, asio::use_awaitable);
  }

  /// Waits for the next push. Fails with asio::experimental::error::channel_closed after the
  /// connection stopped. Cancellation (terminal): fails with operation_aborted, no push lost.
  template <class CompletionToken>
  auto async_receive(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(boost::system::error_code, generic_response)>(
        receive_initiation{this}, token);
  }

  asio::awaitable<generic_response> receive() { return async_receive(asio::use_awaitable); }

  /// Hands every push (the first node is the push itself) to `sink` right inside the
  /// connection's reader, on its executor, instead of queueing it for receive(): no channel
  /// and no scheduler hop per push, for a consumer that buffers pushes itself
  /// (pubsub::subscriber). Set it before run(). The sink must not block; an exception it
  /// throws ends run() like a read error would. While a sink is set, receive() gets nothing.
  void set_push_sink(push_sink sink);

  struct impl;

 private:
  // Named initiation objects (GCC 12 destroys capturing lambda temporaries of a co_await
  // expression twice).
  struct exec_initiation {
    connection* self;
    void operator()(exec_handler handler, const request* req, any_adapter resp) const {
      self->start_exec(*req, resp, std::move(handler));
    }
  };
  struct receive_initiation {
    connection* self;
    // Whether the caller runs on this connection's executor is decided here, on the
    // concrete handler type (cheap), before the handler is type-erased.
    template <class Handler>
    void operator()(Handler&& handler) const {
      const bool same_executor =
          asio::get_associated_executor(handler, self->get_executor()) == self->get_executor();
      self->start_receive(push_handler(std::forward<Handler>(handler)), same_executor);
    }
  };

  void start_exec(const request& req, any_adapter resp, exec_handler handler);
  void start_receive(push_handler handler, bool same_executor);

  std::shared_ptr<impl> impl_;
};

}  // namespace corvo::redis
