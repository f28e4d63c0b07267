#pragma once
// Configuration of a Redis connection, by fields or by URL:
//
//   redis://[user[:password]@]host[:port][/db]      plain TCP (default port 6379)
//   rediss://[user[:password]@]host[:port][/db]     TLS
//   query parameters: ?name=client-name&ca=/path/ca.pem&verify=false&sni=host
//
// User and password may be percent-encoded. A URL with only a password uses
// `redis://:secret@host`. A bad URL throws std::invalid_argument naming what is wrong.

#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/redis/resp3/parser.hpp>
#include <string>
#include <string_view>

namespace corvo::redis {

/// How a connection may be used.
enum class connection_role {
  /// Automatic pipelining of many callers' requests; blocking commands (BLMOVE, XREADGROUP
  /// BLOCK, …) are refused with error::blocking_on_shared_connection, since they would
  /// stall every other caller.
  shared,
  /// One consumer loop (a stream listener, a queue worker) that issues blocking commands.
  dedicated,
};

struct config {
  std::string host = "127.0.0.1";
  std::string port = "6379";

  /// TLS (rediss://): verify the server against `tls_ca_file` (or the system store when
  /// empty) and its name/IP against `tls_server_name` (or `host`).
  bool use_tls = false;
  bool tls_verify = true;
  std::string tls_ca_file;
  std::string tls_server_name;
  /// Client certificate for servers that require one (tls-auth-clients yes).
  std::string tls_cert_file;
  std::string tls_key_file;

  /// AUTH in HELLO: user "default" when only a password is set.
  std::string username;
  std::string password;
  /// SELECT after the handshake when not 0.
  int database = 0;
  /// CLIENT SETNAME in HELLO (shows in CLIENT LIST); empty sends none.
  std::string client_name = "corvo";

  connection_role role = connection_role::shared;

  /// Resolve + TCP connect + TLS handshake + HELLO must finish within this.
  std::chrono::milliseconds connect_timeout{5000};
  /// When the connection has been idle this long, a PING checks it; no answer within the
  /// same time closes the connection and reconnects. 0 disables the check.
  std::chrono::milliseconds health_check_interval{2000};
  /// Deadline of a reply: while requests are in flight, the server must send the next
  /// reply within this time (plus the block time of a blocking command at the head, see
  /// request::block_time()), else the connection is declared lost, every request in flight
  /// fails with error::request_timeout and the connection is re-established. It also acts
  /// as the health check of a busy connection. 0 disables the deadline.
  std::chrono::milliseconds request_timeout{5000};
  /// Requests queued on the connection (not yet written + written and awaiting replies)
  /// at most; a request beyond this waits, in FIFO order, until a reply or a failure makes
  /// room (back-pressure on the callers instead of an unbounded queue). Cancelling a
  /// waiting request removes it unsent. 0: no bound.
  std::size_t max_queued_requests = 4096;
  /// Delays between reconnection attempts.
  backoff_policy reconnect_backoff{std::chrono::milliseconds{50}, std::chrono::milliseconds{2000}};

  /// Limits applied to every reply (a hostile or broken server gets a protocol error).
  resp3::parser_limits limits{};
  /// Pushes buffered for `connection::receive` before the reader waits for the receiver.
  std::size_t push_capacity = 1024;

  /// Parses a redis:// or rediss:// URL into a config (other fields keep their defaults).
  static config from_url(std::string_view url);

  /// "host:port" (for logs).
  std::string address() const { return host + ":" + port; }
};

}  // namespace corvo::redis
