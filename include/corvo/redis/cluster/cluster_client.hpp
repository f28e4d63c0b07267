#pragma once
// A Redis Cluster client: one pipelined `connection` per master, requests routed by the
// slot of their keys, redirections and failovers handled so the caller does not see them.
//
//   cluster_options opts;
//   opts.seeds = {"redis://10.0.0.1:7000", "redis://10.0.0.2:7000"};
//   cluster_client cluster(ex, opts);
//   co_spawn(ex, cluster.run(), log_errors);        // topology, refreshes, until cancel()
//   request req;
//   req.push("SET", "{user:1}:name", "ada");
//   req.push("INCR", "{user:1}:visits");              // same hash tag: same slot
//   response<std::string, long long> resp;
//   co_await cluster.exec(req, resp);
//
// Topology: run() asks the seeds (then any known node) for CLUSTER SLOTS (or CLUSTER
// SHARDS), keeps a slot map, opens a connection to every master, and re-reads the map
// periodically, after MOVED (rate-limited), and every `min_refresh_interval` while a
// master's connection is down or a slot has no owner, so a promoted replica is found soon
// after the cluster promotes it.
//
// Routing (routing.hpp): a request goes to the master of its keys' slot; every key of
// every command must hash to the same slot, else exec() fails before sending with
// error::crossslot, naming two of the keys. Keyless requests go to any master (a connected
// one when there is one); a route_hint overrides the keys. SCRIPT LOAD/FLUSH, FUNCTION
// LOAD/..., FLUSHALL/FLUSHDB go to every master (the first error reply, else the first
// master's reply, is returned), so `script::exec` works unchanged on a cluster. A broadcast
// does not wait for a master whose connection is down (or that does not answer within
// `retry_deadline`): it runs on the others, then fails with error::not_connected naming the
// masters it did not reach.
//
// Replies that mean "not here / not now" never reach the caller while retries remain:
// - MOVED: the map is patched, a refresh is scheduled, the command is retried on the new
//   owner; ASK: the command is retried once on the target, preceded by ASKING, and the map
//   is left alone. At most `max_redirections` of them per request (error::too_many_
//   redirections). In a pipeline only the redirected commands are re-sent; a request
//   holding MULTI is re-sent whole (the server aborted the transaction).
// - TRYAGAIN, LOADING, MASTERDOWN, CLUSTERDOWN, READONLY: retried with backoff until
//   `retry_deadline` after exec() began, then error::cluster_down. A slot without owner
//   waits for a refresh within the same deadline. A request marked fail_if_not_connected
//   (one that must not wait for a server: a stopping component's last acks, a probe) fails
//   at once with error::cluster_down on CLUSTERDOWN or on a slot without owner, as it
//   fails with error::not_connected when its node's connection is down.
// None of these replies means the command ran, so these retries are always safe.
//
// Node failure follows the standalone rules of `connection` (see connection.hpp): a request
// written before the connection was lost fails with error::connection_lost unless it is
// idempotent; one not yet written waits. When a refresh shows that the node no longer
// serves as master (a replica was promoted), its connection is closed and every request
// still waiting on it (never written, or idempotent) is re-routed to the new owner. The
// caller bounds the wait, as with a standalone connection (corvo::with_timeout).
//
// Sharded pub/sub: SSUBSCRIBE / SUNSUBSCRIBE (alone in a request, or via ssubscribe()) are
// kept as the desired set of shard channels. Each is subscribed on a dedicated subscriber
// connection to its slot's master and moved when the owner changes (failover, or the
// server's `sunsubscribe` push when the slot migrates). Every push of every connection
// (smessage, ssubscribe confirmations, ...) comes out of receive().
//
// Errors: exec() throws boost::system::system_error with a corvo::redis::error code; server
// error replies other than the cluster ones are stored in the response like on a single
// connection. Cancellation of exec() behaves as on `connection` (terminal: completes at
// once with operation_aborted; a written request's replies are still consumed).
//
// Threading: none; use the client from its executor (one thread or a strand).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/redis/adapter.hpp>
#include <corvo/redis/cluster/routing.hpp>
#include <corvo/redis/cluster/slot_map.hpp>
#include <corvo/redis/config.hpp>
#include <corvo/redis/connection.hpp>
#include <corvo/redis/request.hpp>
#include <corvo/redis/response.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corvo::redis {

namespace asio = boost::asio;

struct cluster_options {
  /// Seed nodes as redis:// / rediss:// URLs or "host:port". Any reachable one is enough;
  /// the others are tried in order when it is not.
  std::vector<std::string> seeds;
  /// Settings of every node connection: credentials, TLS, client name, timeouts, role,
  /// reconnect backoff, health check. Host and port come from the topology.
  config node;
  /// MOVED + ASK redirections followed per request.
  unsigned max_redirections = 16;
  /// How long one request keeps retrying TRYAGAIN / CLUSTERDOWN / an uncovered slot.
  std::chrono::milliseconds retry_deadline{10'000};
  /// Pauses between those retries.
  backoff_policy retry_backoff{std::chrono::milliseconds{10}, std::chrono::milliseconds{250}};
  /// A full refresh of the topology at least this often.
  std::chrono::milliseconds refresh_interval{60'000};
  /// At most one refresh per this interval (MOVED storms); also the period of the checks
  /// while a master is unreachable.
  std::chrono::milliseconds min_refresh_interval{200};
  /// Time allowed to one node to answer CLUSTER SLOTS before the next one is asked.
  std::chrono::milliseconds refresh_timeout{2'000};
  /// Ask CLUSTER SHARDS (Redis >= 7) instead of CLUSTER SLOTS.
  bool use_cluster_shards = false;
  /// Open a master's connection on its first request instead of at discovery (dedicated
  /// clients do this: they only need the nodes they talk to).
  bool connect_lazily = false;
};

/// Counters of a cluster client, for logs, metrics and tests.
struct cluster_stats {
  std::uint64_t refreshes = 0;         ///< topology queries answered
  std::uint64_t topology_changes = 0;  ///< refreshes that changed a slot's owner
  std::uint64_t moved = 0;             ///< MOVED replies followed
  std::uint64_t ask = 0;               ///< ASK replies followed
  std::uint64_t retries = 0;           ///< TRYAGAIN / CLUSTERDOWN / READONLY / LOADING retries
  std::uint64_t rerouted = 0;          ///< requests moved off a node that stopped being master
  std::uint64_t resubscribed = 0;      ///< shard channels subscribed again on a new owner
};

class cluster_client {
 public:
  using executor_type = asio::any_io_executor;

  cluster_client(executor_type executor, cluster_options options);
  /// Cancels run() and fails waiting requests with connection_closed.
  ~cluster_client();
  cluster_client(const cluster_client&) = delete;
  cluster_client& operator=(const cluster_client&) = delete;

  executor_type get_executor() const noexcept;
  const cluster_options& get_options() const noexcept;

  /// Discovers the topology, keeps it current and keeps the node connections up until
  /// cancel() (then returns) or the awaiting coroutine is cancelled (then throws
  /// operation_aborted). Seeds that cannot be reached are retried with the node config's
  /// reconnect backoff. Call once.
  asio::awaitable<void> run();

  /// Stops run(), closes every connection and fails waiting requests with
  /// error::connection_closed; receive() then fails with channel_closed.
  void cancel();

  /// connection::reset on the command connection of every node (sharded pub/sub
  /// connections excluded): requests written to a node and not answered fail with
  /// error::connection_reset, and the connections are re-established (see connection.hpp).
  void reset_connections(std::string_view reason);
  /// connection::reset on the command connection of the node at `address` ("host:port"),
  /// if there is one.
  void reset_connection_to(std::string_view address, std::string_view reason);

  /// Executes `req` on the node that serves its keys (see the file comment) and adapts the
  /// replies into `resp`. Waits for the first topology unless `req` is
  /// fail_if_not_connected (then error::not_connected; such a request also fails at once
  /// with error::cluster_down on CLUSTERDOWN or an unserved slot). Returns the reply bytes.
  asio::awaitable<std::size_t> exec(const request& req, any_adapter resp = ignore);
  /// Like exec(req, resp), but routed by `hint` instead of the request's keys.
  asio::awaitable<std::size_t> exec(const request& req, any_adapter resp, route_hint hint);

  /// Adds shard channels to the desired set and subscribes them on their owners; returns
  /// once the SSUBSCRIBEs are written (confirmations arrive through receive()).
  asio::awaitable<void> ssubscribe(std::vector<std::string> channels);
  /// Removes shard channels from the desired set and unsubscribes them.
  asio::awaitable<void> sunsubscribe(std::vector<std::string> channels);

  /// The next push from any node (smessage, ssubscribe, message, ...), as nodes. Fails with
  /// asio::experimental::error::channel_closed after the client stopped. Cancellation
  /// (terminal): throws operation_aborted, no push lost.
  asio::awaitable<generic_response> receive();

  /// Hands the pushes of every node connection (ordinary and subscriber connections) to
  /// `sink` synchronously, instead of receive(): connection::set_push_sink. The client's own
  /// handling of a push (an unsolicited sunsubscribe after a slot moved) comes first. Set it
  /// before run().
  void set_push_sink(connection::push_sink sink);

  /// A new client for blocking commands (BLPOP, XREADGROUP BLOCK, ...): same options with
  /// dedicated-role connections opened lazily, seeded with this client's topology. Run it
  /// like this one; each key's requests go to their slot's master on its own connection.
  std::unique_ptr<cluster_client> dedicated() const;

  /// True once a topology is known.
  bool has_topology() const noexcept;
  /// A copy of the current slot map.
  slot_map topology() const;
  const cluster_stats& stats() const noexcept;
  /// The counters of each node's command connection (sharded pub/sub connections excluded),
  /// by address ("host:port"), in address order. A node that left the topology keeps its
  /// counts under its address (added to those of a later connection to the same address),
  /// so that the counts never go down.
  std::vector<std::pair<std::string, connection_stats>> node_stats() const;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace corvo::redis
