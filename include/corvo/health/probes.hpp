#pragma once
// Probes for the dependencies corvo talks to. Each goes through the application's own client
// (it opens no connection of its own), so probing a dead server adds no connection attempts:
// reconnecting is the client's job, with its backoff.
//
//   auto redis_dep   = m.add("redis", health::redis_ping_probe(redis));
//   auto stream_dep  = m.add("orders-stream", health::stream_readable_probe(redis, {"orders"}));
//   health::kafka_probe kafka(ex, kafka_cfg, {"corvo.tasks"});
//   auto kafka_dep   = m.add("kafka", kafka.probe());
//
//   health::redis_cluster_health cluster(m, redis_cluster_client, "redis");
//   auto shard_dep = cluster.slot_dependency("{orders}");   // the master that owns {orders}

#include <boost/asio/any_io_executor.hpp>
#include <corvo/health/monitor.hpp>
#include <corvo/kafka/config.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::redis {
class client;
class cluster_client;
}  // namespace corvo::redis

namespace corvo::health {

/// PING through `redis` (standalone or cluster: any master): up on PONG, down on an error
/// or while the client is not connected (the request is marked fail_if_not_connected, so a
/// lost connection is down at once). A server that accepts the socket but does not answer
/// (SIGSTOP) is down when the monitor's timeout cuts the probe. `redis` must outlive the
/// probe.
probe_fn redis_ping_probe(redis::client& redis);

/// Has `redis` drop its connections (redis::client::reset_connections, which reaches the
/// clients made from it with dedicated() as well) when `dep` goes down. A server that stops
/// answering but keeps its socket open (SIGSTOP, a frozen VM) looks connected: without this
/// the requests written to it wait for their reply deadline (redis.request_timeout, 5 s by
/// default), so the components stopped because `dep` went down would wait that long for
/// their last acknowledgements, failure reports, pops and reads. With it they fail at once
/// with error::connection_reset, the connections stay not connected while the server is
/// hung (the handshake is not answered), and the stopping components give their last
/// requests up as for a dead server (entries stay pending, tasks leased, items in the
/// processing list: recovered after the restart). A dependency that went down because the
/// connection was lost resets nothing (the client is reconnecting already). Use it with the
/// dependency probed through `redis`:
///   auto redis_dep = app.add_dependency("redis", health::redis_ping_probe(redis));
///   health::reset_when_down(redis_dep, redis);
/// `redis` must outlive the monitor's run(). std::invalid_argument for a default-constructed
/// `dep`.
void reset_when_down(const dependency& dep, redis::client& redis);

/// "Stream readable", as a stream consumer needs it: `XINFO STREAM` on each of `streams`
/// (raw commands; in a cluster each goes to its key's master). Down when one fails or
/// replies with an error (e.g. the stream does not exist: "ERR no such key"), naming it.
probe_fn stream_readable_probe(redis::client& redis, std::vector<std::string> streams);

/// Health of a Redis Cluster, per slot owner.
///
/// Registers the dependency `name` (the whole cluster) with a probe that, each round, asks
/// every master of the client's current topology for `CLUSTER INFO` (in parallel, each
/// bounded by `options.timeout`; the round itself by 1.5 × `options.timeout`, so a dead or
/// hung master is reported as that master, not as a timed-out round). The whole cluster is
///   down      when a master that answers says `cluster_state:fail`, or none answers;
///   degraded  when some master does not answer (down or hung) but the state is ok;
///   up        when every master answers `cluster_state:ok`.
/// A slot dependency (slot_dependency) is recorded from the same round: down when the
/// cluster is down, when its slot has no owner, or when its owner did not answer; up
/// otherwise. After a failover the client's topology names the promoted replica, which
/// answers, so the slot dependency comes back by itself. Components whose keys live on a
/// healthy master therefore keep running while one master is down or hung; a cluster that
/// says `cluster_state:fail` (e.g. a majority of masters down) stops everything.
class redis_cluster_health {
 public:
  /// `cluster` (the client's cluster implementation, `redis::client::cluster()`) and `m`
  /// must outlive this object and the monitor's run().
  redis_cluster_health(monitor& m, redis::cluster_client& cluster, std::string name = "redis",
                       probe_options options = {});
  ~redis_cluster_health();
  redis_cluster_health(const redis_cluster_health&) = delete;
  redis_cluster_health& operator=(const redis_cluster_health&) = delete;

  /// The whole cluster.
  dependency cluster() const noexcept;
  /// The passive dependency "<name>[slot N]" of `key`'s slot (hash tags honoured); the same
  /// handle for every key of one slot.
  dependency slot_dependency(std::string_view key);
  dependency slot_dependency(std::uint16_t slot);

  /// Masters ("host:port") that did not answer in the last round.
  std::vector<std::string> unanswered_masters() const;

  /// The cluster form of health::reset_when_down: when this cluster or one of its slot
  /// dependencies goes down, `redis` (the client whose cluster() this object probes) drops
  /// its connections, and those of its dedicated() clients, to the masters that did not
  /// answer the round (redis::client::reset_connections_to): requests written to a hung
  /// master fail at once with error::connection_reset instead of at their reply deadline,
  /// so the components stopped with its slots do not wait for it; the other masters'
  /// connections are untouched. A dead master's connection is down already: nothing to
  /// reset. `redis` must outlive the monitor's run().
  void reset_when_down(redis::client& redis);

  struct state;

 private:
  std::shared_ptr<state> state_;
};

/// Kafka health from librdkafka's statistics, for the topics a component uses.
///
/// Owns a small idle producer on `config` (nothing is ever sent) with
/// `statistics.interval.ms` = `statistics_interval`, and registers `topics` with it so its
/// statistics carry their partitions and leaders. The probe reads the latest statistics:
/// up when every partition's leader broker is connected (state UP), degraded when some
/// are, down when none is, when the topics' metadata is not known (yet), or when no
/// statistics arrived for three intervals.
class kafka_probe {
 public:
  kafka_probe(asio::any_io_executor executor, const kafka::client_config& config,
              std::vector<std::string> topics,
              std::chrono::milliseconds statistics_interval = std::chrono::milliseconds{250});
  ~kafka_probe();
  kafka_probe(const kafka_probe&) = delete;
  kafka_probe& operator=(const kafka_probe&) = delete;

  /// The probe function; valid while this object lives.
  probe_fn probe();

  /// The verdict from the latest statistics (what probe() returns).
  probe_result evaluate() const;

  /// Feeds one statistics document (the producer's callback does; tests may too).
  void observe(std::string_view statistics_json);

  /// Stops the idle producer (its polling keeps the io_context busy until then). The probe
  /// reports down afterwards (statistics go stale).
  asio::awaitable<void> close();

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace corvo::health
