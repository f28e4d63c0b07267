#pragma once
// One Redis API over a standalone server and a Redis Cluster, for code that does not care
// which one it talks to.
//
//   auto cfg = redis::client_config::from(app_config);   // "redis.url" or "redis.cluster.*"
//   redis::client redis(ex, cfg);
//   co_spawn(ex, redis.run(), log_errors);
//   redis::request req;
//   req.push("HSET", "{order:7}", "state", "paid");
//   co_await redis.exec(req);                             // routed by slot in a cluster
//
//   auto worker = redis.dedicated();                      // for BLMOVE, XREADGROUP BLOCK, …
//   co_spawn(ex, worker->run(), log_errors);
//
// Standalone: a `connection` (connection.hpp). Cluster: a `cluster_client`
// (cluster/cluster_client.hpp), which adds routing rules the standalone server does not
// have: every key of one request must hash to one slot (use hash tags), else exec() fails
// with error::crossslot. Code written for the cluster therefore runs unchanged on a single
// server. Failure rules, cancellation and push delivery are those of the underlying
// implementation, which agree on everything a caller can observe through this class.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <corvo/core/config.hpp>
#include <corvo/redis/adapter.hpp>
#include <corvo/redis/cluster/cluster_client.hpp>
#include <corvo/redis/cluster/routing.hpp>
#include <corvo/redis/config.hpp>
#include <corvo/redis/connection.hpp>
#include <corvo/redis/request.hpp>
#include <corvo/redis/response.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::redis {

struct client_config {
  /// The standalone server; in cluster mode unused (the seeds and `cluster.node` say where
  /// and how to connect).
  config server;
  /// Set: cluster mode with these options (seeds, node settings, retries).
  std::optional<cluster_options> cluster;

  bool is_cluster() const noexcept { return cluster.has_value(); }

  /// A standalone server by URL.
  static client_config from_url(std::string_view url);
  /// A cluster from seed URLs; the first seed's credentials, TLS settings and client
  /// name become the settings of every node connection.
  static client_config from_cluster_seeds(const std::vector<std::string>& seeds);

  /// From the application configuration, below `section` (default "redis"):
  ///   url                      standalone server (redis:// or rediss://)
  ///   cluster.seeds            list (or comma-separated string) of seed URLs: cluster mode
  ///   cluster.enabled          true: cluster mode seeded by `url` when there are no seeds
  ///   cluster.max_redirections, cluster.retry_deadline, cluster.refresh_interval,
  ///   cluster.min_refresh_interval, cluster.use_cluster_shards   cluster_options fields
  ///   request_timeout          reply deadline of every connection (default 5 s, 0 = none;
  ///                            config::request_timeout)
  ///   max_queued_requests      queue bound of every connection (default 4096, 0 = none;
  ///                            config::max_queued_requests)
  /// Throws corvo::config_error naming the key when neither `url` nor `cluster.seeds` is
  /// given, or a value has the wrong type.
  static client_config from(const corvo::config& cfg, std::string_view section = "redis");

 private:
  static client_config from_section(const corvo::config& cfg, std::string_view section);
};

class client {
 public:
  using executor_type = asio::any_io_executor;

  client(executor_type executor, client_config cfg);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  executor_type get_executor() const noexcept;
  const client_config& get_config() const noexcept { return config_; }
  bool is_cluster() const noexcept { return cluster_ != nullptr; }

  /// Keeps the connection(s) up until cancel(); see connection::run / cluster_client::run.
  asio::awaitable<void> run();
  void cancel();

  /// Drops the established connections of this client and of its family (the client made
  /// with the public constructor and every client made from it, directly or not, with
  /// dedicated()): connection::reset on each (in a cluster, on every master's command
  /// connection). The requests written and not yet answered fail at once with
  /// error::connection_reset instead of at their reply deadline (request_timeout), and the
  /// connections are re-established with their backoff. For a health monitor that declared
  /// the server hung (health::reset_when_down): a blocked consumer's pop or read, or a
  /// stopping component's last acknowledgements, stop waiting for it. Connections that are
  /// not established are left alone (no extra connection attempt).
  void reset_connections(std::string_view reason);

  /// The same for the connections to one server, `address` ("host:port", as
  /// cluster_node::address() and config::address() spell it), in every client of the
  /// family: in a cluster, that node's command connection (a hung master), the other masters
  /// untouched; standalone, the connection when `address` is its server's.
  void reset_connections_to(std::string_view address, std::string_view reason);

  /// Executes `req` and adapts its replies into `resp`. Throws system_error on failure.
  asio::awaitable<std::size_t> exec(const request& req, any_adapter resp = ignore);
  /// Routed by `hint` in a cluster (scripts without declared keys, per-shard admin
  /// commands); a standalone server ignores the hint.
  asio::awaitable<std::size_t> exec(const request& req, any_adapter resp, route_hint hint);

  /// The next push (pub/sub message, subscription confirmation, smessage, ...).
  asio::awaitable<generic_response> receive();

  /// Pushes go to `sink`, synchronously, instead of receive(); set it before run(). See
  /// connection::set_push_sink and cluster_client::set_push_sink.
  void set_push_sink(connection::push_sink sink);

  /// A client of the same kind whose connections have the dedicated role, for blocking
  /// commands; run() it like this one. In a cluster it starts from this client's topology
  /// and connects to a master on its first request there, so a consumer blocking on one
  /// key holds one connection, to that key's master, and follows it across failovers.
  std::unique_ptr<client> dedicated() const;

  /// The underlying implementation (one of them is null).
  connection* standalone() noexcept { return standalone_.get(); }
  cluster_client* cluster() noexcept { return cluster_.get(); }

 private:
  // A dedicated() client: of `family`; a standalone connection when `cluster` is null.
  client(executor_type executor, client_config cfg, std::unique_ptr<cluster_client> cluster,
         std::shared_ptr<std::vector<client*>> family);
  void reset_own_connections(std::string_view reason);
  void reset_own_connections_to(std::string_view address, std::string_view reason);

  client_config config_;
  std::unique_ptr<connection> standalone_;
  std::unique_ptr<cluster_client> cluster_;
  // The clients reset_connections() reaches: this one, the one it was made from and every
  // dedicated() client of theirs; each adds itself when made and removes itself when
  // destroyed (one executor: no locking).
  std::shared_ptr<std::vector<client*>> family_;
};

}  // namespace corvo::redis
