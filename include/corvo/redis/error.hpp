#pragma once
// Error codes of corvo's Redis client, in one category ("corvo.redis").
//
// Three families share the category, in separate numeric ranges so the values stay stable
// as each family grows:
//   1..99    protocol errors: the byte stream is not valid RESP3 or breaks a parser limit.
//            The reply stream can no longer be trusted; the connection must be closed.
//   100..199 reply errors: one reply is valid RESP3 but is not what the caller asked for
//            (a server error reply, a type mismatch). They are stored with that reply; the
//            connection and the other replies are unaffected.
//   200..299 connection errors, set by the connection (not by the protocol code).
//   300..399 cluster errors, set by the cluster client (routing, redirections).
// `is_protocol_error` / `is_reply_error` / `is_connection_error` / `is_cluster_error` test
// the family.

#include <boost/system/error_code.hpp>
#include <exception>
#include <type_traits>

namespace corvo::redis {

enum class error {
  // --- protocol (fatal for the connection) ---------------------------------------------
  /// The first byte of a node is not a RESP3 type byte.
  invalid_type_byte = 1,
  /// A length or element count is not a decimal number, or is negative (other than the
  /// RESP2 null `-1` of `$` and `*`).
  invalid_length,
  /// A `:` integer is not a valid signed 64-bit decimal.
  invalid_integer,
  /// A `,` double is not a number, `inf`, `-inf` or `nan`.
  invalid_double,
  /// A `#` boolean is not `t` or `f`.
  invalid_boolean,
  /// A `(` big number is not an optionally signed run of digits.
  invalid_big_number,
  /// A `=` verbatim string lacks its three-character format and `:` (e.g. `txt:`).
  invalid_verbatim_string,
  /// A line or a bulk payload is not terminated by CRLF.
  missing_crlf,
  /// RESP3 streamed strings and aggregates (`$?`, `*?`) are not supported; Redis never
  /// sends them.
  streamed_type_unsupported,
  /// Aggregates nest deeper than `parser_limits::max_depth`.
  nesting_too_deep,
  /// A bulk string, bulk error or verbatim string is longer than
  /// `parser_limits::max_bulk_length`.
  bulk_too_large,
  /// An aggregate announces more elements than `parser_limits::max_aggregate_size`.
  aggregate_too_large,
  /// A top-level message is (or announces itself to be) larger than
  /// `parser_limits::max_message_size`.
  message_too_large,
  /// `resp3::parse` was given bytes that end before the message does (a caller bug: it is
  /// meant for messages a `framer` found complete).
  incomplete_message,

  // --- reply (stored with the reply; the connection stays usable) -------------------------
  /// The server answered with an error reply (`-ERR ...` or `!`); the text is kept in
  /// `reply_error::message`.
  server_error = 100,
  /// The reply's RESP3 type cannot be stored in the declared C++ type.
  type_mismatch,
  /// The reply is null but the declared type is not `std::optional`.
  unexpected_null,
  /// A string reply was declared as a number or bool but does not parse as one.
  not_a_number,
  /// An aggregate has a different number of elements than the declared tuple, or a map
  /// was read from an array with an odd number of elements.
  size_mismatch,
  /// A response has fewer slots than the request has replies.
  response_too_small,
  /// The server answered SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE (or an UNSUBSCRIBE) with an
  /// error reply instead of confirmations, e.g. `NOPERM` for an ACL user without rights on
  /// the channel. exec() fails with it; the connection logs the server's text. The other
  /// replies of the pipeline are unaffected.
  subscription_refused,

  // --- connection (set by the connection) -----------------------------------------------
  /// The request could not be sent: the connection is not (yet) established.
  not_connected = 200,
  /// The connection was lost after the request was written; it may or may not have run.
  connection_lost,
  /// Connecting (resolve, TCP, TLS handshake) did not finish in time.
  connect_timeout,
  /// HELLO/AUTH was refused (wrong password, unknown ACL user).
  auth_failed,
  /// The idle health check (PING) got no answer in time.
  health_check_timeout,
  /// The connection was closed or cancelled by its owner before the request completed.
  connection_closed,
  /// HELLO/SELECT failed for another reason than credentials (e.g. an unknown database).
  handshake_failed,
  /// A reply arrived while no request was waiting for one: the reply stream cannot be
  /// trusted any more, so the connection is re-established.
  unexpected_reply,
  /// A blocking command (BLMOVE, BZPOPMIN, XREADGROUP BLOCK, …) was sent on a shared
  /// connection, where it would stall every other caller; use a dedicated connection.
  blocking_on_shared_connection,
  /// No reply arrived within `config::request_timeout` (plus the block time of a blocking
  /// command): the server is hung or unreachable while the socket stays open (SIGSTOP, a
  /// frozen VM, CLIENT PAUSE). Every request in flight fails with it and the connection is
  /// re-established. The request may or may not have run.
  request_timeout,
  /// The connection was dropped by its owner (connection::reset, client::reset_connections),
  /// typically because a health probe found the server unresponsive: the request had been
  /// written and may or may not have run. The connection is re-established.
  connection_reset,

  // --- cluster (set by the cluster client) ------------------------------------------------
  /// The keys of one request hash to different slots; the exception text names two of
  /// them. Nothing was sent.
  crossslot = 300,
  /// MOVED/ASK redirections were followed `cluster_options::max_redirections` times
  /// without reaching a node that serves the slot.
  too_many_redirections,
  /// The cluster kept answering CLUSTERDOWN / TRYAGAIN / LOADING (or no node served the
  /// slot) until `cluster_options::retry_deadline`; for a request marked
  /// fail_if_not_connected, at the first CLUSTERDOWN or unserved slot. Nothing was executed.
  cluster_down,
  /// The request cannot be routed in a cluster (SSUBSCRIBE mixed with other commands, or a
  /// payload that is not a list of commands).
  unroutable_request,
};

/// The category of `corvo::redis::error`; its name is "corvo.redis".
const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

namespace detail {
inline bool in_family(const boost::system::error_code& ec, int low, int high) noexcept {
  return ec.category() == error_category() && ec.value() >= low && ec.value() < high;
}
}  // namespace detail

/// The byte stream is broken: close the connection.
inline bool is_protocol_error(const boost::system::error_code& ec) noexcept {
  return detail::in_family(ec, 1, 100);
}
/// One reply is not what was asked for; the connection is fine.
inline bool is_reply_error(const boost::system::error_code& ec) noexcept {
  return detail::in_family(ec, 100, 200);
}
inline bool is_connection_error(const boost::system::error_code& ec) noexcept {
  return detail::in_family(ec, 200, 300);
}
/// Set by the cluster client: routing, redirections, cluster state.
inline bool is_cluster_error(const boost::system::error_code& ec) noexcept {
  return detail::in_family(ec, 300, 400);
}

/// True when `e` holds a system_error with error::not_connected: a request marked
/// `fail_if_not_connected` was refused because its connection is down (nothing was sent).
/// Code that must not wait for a server it cannot reach (a stopping consumer's last acks)
/// marks its requests so and gives up on this.
bool is_not_connected(const std::exception_ptr& e) noexcept;

/// True when `e` holds a system_error with error::not_connected or error::cluster_down: a
/// request marked `fail_if_not_connected` was refused because its server cannot be reached
/// or (on a cluster) cannot serve its slot now. Nothing was executed. Code that must not
/// wait for Redis gives up on this (while stopping) or retries later.
bool is_unreachable(const std::exception_ptr& e) noexcept;

}  // namespace corvo::redis

template <>
struct boost::system::is_error_code_enum<corvo::redis::error> : std::true_type {};
