#pragma once
// A real redis-server for integration tests: its own free port, its own temp dir holding a
// generated config, its data and its log, and (for TLS) a CA and certificates made on the
// fly with the openssl CLI. The server is killed and its dir removed with the object.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

namespace corvo::test {

/// An ACL user written into the config as `user <name> on ><password> <rules>`.
struct redis_acl_user {
  std::string name;
  std::string password;
  std::string rules = "~* &* +@all";
};

struct redis_server_options {
  /// `appendonly yes` with `appendfsync everysec`.
  bool append_only = false;
  /// `requirepass`: the password of the `default` user.
  std::optional<std::string> password;
  /// An extra ACL user; `url()` and `cli()` authenticate as this user when set.
  std::optional<redis_acl_user> acl_user;
  /// Serve TLS only (`port 0`, `tls-port N`) with certificates signed by a generated CA.
  bool tls = false;
  /// With `tls`: require client certificates (`tls-auth-clients yes`); `cli()` then presents
  /// the generated client certificate.
  bool tls_auth_clients = false;
  /// `cluster-enabled yes`; the port is then chosen so that port + 10000 is free too.
  bool cluster_enabled = false;
  /// `cluster-node-timeout` in milliseconds (cluster mode only).
  int cluster_node_timeout_ms = 1000;
  /// Keep RDB snapshots at their defaults instead of `save ""`.
  bool rdb_snapshots = false;
  /// Raw config lines appended at the end of the generated config.
  std::vector<std::string> extra_config;
  /// A fixed port instead of a free one (no retry on a port race then).
  std::optional<std::uint16_t> port;
  /// Name prefix of the temp dir.
  std::string tag = "redis";
  /// Construct waits until the server answers PING. Off: call `wait_ready()` yourself
  /// (lets a cluster start all its nodes before waiting for any).
  bool wait_until_ready = true;
};

/// One redis-server process. Not copyable, not movable (hold it in a unique_ptr).
class redis_server {
 public:
  /// Writes the config and starts the server; unless `wait_until_ready` is off, waits until
  /// it answers PING. Throws `std::runtime_error` with the tail of the server log if it does
  /// not come up (a lost port race is retried with a new port a couple of times first).
  explicit redis_server(redis_server_options options = {});
  /// Kills the server (SIGKILL) and removes its dir.
  ~redis_server();
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  /// Waits until the server answers PING; throws like the constructor.
  void wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds{20});

  const std::string& host() const noexcept { return host_; }
  /// The TCP port, or the TLS port when `tls` is on.
  std::uint16_t port() const noexcept { return port_; }
  /// `host:port`.
  std::string address() const;
  /// `redis://[user:pass@]127.0.0.1:port`, `rediss://...` with TLS; with only a
  /// `password`, `redis://:pass@...`.
  std::string url() const;
  bool tls() const noexcept { return options_.tls; }
  const redis_server_options& options() const noexcept { return options_; }

  /// The server's process id (of the current run).
  pid_t pid() const noexcept;
  /// True while the server process is alive.
  bool running();
  /// SIGKILL, and reap: the data written since the last fsync may be lost.
  void kill();
  /// Graceful stop (SIGTERM: redis flushes the AOF and exits); SIGKILL after 10 s.
  void stop();
  /// Stops the server if it runs, then starts it again on the same port, with the same dir
  /// and data, and waits until it answers PING. Call it on the thread that constructed the
  /// server, like `start()`.
  void restart();
  /// Starts the stopped (or killed) server again on the same port, with the same dir and
  /// data, without waiting for it. `stop()`/`kill()` may run on any thread (e.g. a helper
  /// thread, so the test's io_context keeps running during the outage), but the server must be
  /// started on the thread that constructed it: the child dies with the thread that forked
  /// it (PR_SET_PDEATHSIG), so a server started from a short-lived helper thread was killed
  /// as soon as that thread ended. Throws `std::logic_error` on another thread.
  void start();

  /// `redis-cli` against this server (TLS and auth flags added) with `args`; returns stdout
  /// without its trailing newline. Error replies show up in the output (`ERR ...`).
  template <typename... Args>
  std::string cli(const Args&... args) {
    return cli_argv({std::string(args)...});
  }
  std::string cli_argv(const std::vector<std::string>& args);
  /// Like `cli_argv` but returns the whole result (exit code, stdout, stderr).
  command_result cli_result(const std::vector<std::string>& args);
  /// `redis-cli` with only the connection flags (host, port, TLS), no credentials: the test
  /// adds `-a`, `--user`/`--pass` or nothing.
  command_result cli_unauthenticated(const std::vector<std::string>& args);
  /// The redis-cli connection flags (host, port, TLS; no auth) for hand-made command lines.
  std::vector<std::string> cli_connection_flags() const;
  /// The redis-cli auth flags of `url()`'s credentials (empty without auth).
  std::vector<std::string> cli_auth_flags() const;

  const std::filesystem::path& dir() const noexcept;
  std::filesystem::path config_path() const;
  std::filesystem::path log_path() const;
  /// The CA certificate that signed the server certificate (TLS only; empty otherwise).
  std::filesystem::path ca_cert_path() const;
  /// A client certificate and key signed by the same CA (TLS only; empty otherwise).
  std::filesystem::path client_cert_path() const;
  std::filesystem::path client_key_path() const;

 private:
  void write_config() const;
  void make_certificates() const;
  void launch();
  // Waits for PING; false if the process exited first (the log says why).
  bool await_ping(std::chrono::milliseconds timeout);
  [[noreturn]] void fail(const std::string& why);

  redis_server_options options_;
  std::unique_ptr<temp_dir> dir_;
  std::string host_ = "127.0.0.1";
  std::uint16_t port_ = 0;
  std::optional<child_process> process_;
  std::thread::id owner_ = std::this_thread::get_id();
};

}  // namespace corvo::test
