#pragma once
// corvo's embedded Kafka: librdkafka's in-process mock cluster. It serves the Kafka
// protocol on 127.0.0.1 (random ports) from a librdkafka background thread, so tests and
// the demo run producers and consumers against it exactly as against a real cluster.
// Limits of the mock (librdkafka 2.0.2): no CreateTopics request (use `create_topic`), the
// first consumer group join waits about 3 s, partitions keep only a few MiB.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

// librdkafka's mock cluster handle (rd_kafka_mock_cluster_t), declared here so the public
// header does not include librdkafka.
struct rd_kafka_mock_cluster_s;

namespace corvo::kafka {

/// An in-process Kafka cluster of `broker_count` mock brokers with ids 1..N.
///
/// Thread-safety: the member functions may be called from any thread; each control call
/// (create_topic, set_broker_down/up) hands the request to the mock's own thread and waits
/// for it, so it blocks briefly: call them from set-up code, not from an io_context thread
/// that must stay responsive. Not copyable; movable (a moved-from object may only be
/// destroyed or assigned to).
class embedded_cluster {
 public:
  /// Starts `broker_count` mock brokers listening on 127.0.0.1. Throws
  /// `std::invalid_argument` if `broker_count` is 0 and `std::runtime_error` if librdkafka
  /// cannot create the cluster (e.g. no port to listen on).
  explicit embedded_cluster(std::size_t broker_count = 3);
  /// Stops the brokers (closing their client connections) and frees everything.
  ~embedded_cluster();
  embedded_cluster(embedded_cluster&&) noexcept;
  embedded_cluster& operator=(embedded_cluster&&) noexcept;
  embedded_cluster(const embedded_cluster&) = delete;
  embedded_cluster& operator=(const embedded_cluster&) = delete;

  /// The `bootstrap.servers` value for clients: comma-separated `127.0.0.1:port` pairs.
  const std::string& bootstrap_servers() const noexcept;

  /// Number of brokers; their ids are 1..broker_count().
  std::size_t broker_count() const noexcept;

  /// Creates `name` with `partitions` partitions, each replicated on `replication_factor`
  /// brokers (leaders spread over the brokers). Throws `std::invalid_argument` for an empty
  /// name, `partitions` < 1 or a replication factor outside 1..broker_count(), and
  /// `std::runtime_error` naming librdkafka's error if the mock refuses (e.g. the topic
  /// already exists).
  void create_topic(std::string_view name, int partitions = 1, int replication_factor = 1);

  /// Like create_topic, but a topic that already exists is left as it is. Returns true
  /// when the topic was created.
  bool ensure_topic(std::string_view name, int partitions = 1, int replication_factor = 1);

  /// Disconnects broker `broker_id`'s clients and refuses new connections until
  /// `set_broker_up`. Partition leadership does not move. Throws `std::out_of_range` for an
  /// id outside 1..broker_count() and `std::runtime_error` if librdkafka reports an error.
  void set_broker_down(std::int32_t broker_id);

  /// Lets broker `broker_id` accept connections again. Errors as for `set_broker_down`.
  void set_broker_up(std::int32_t broker_id);

  /// `set_broker_down` / `set_broker_up` for every broker at once.
  void set_all_brokers_down();
  void set_all_brokers_up();

  /// librdkafka's mock cluster, for the mock functions not wrapped here (request error
  /// injection, RTT, leader changes). Owned by this object.
  rd_kafka_mock_cluster_s* native_handle() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The process-wide embedded cluster with `broker_count` brokers, started on first use and
/// kept until the process exits; what `bootstrap.servers = embedded:N` refers to.
/// Thread-safe. Throws as the embedded_cluster constructor does.
std::shared_ptr<embedded_cluster> shared_embedded_cluster(std::size_t broker_count);

}  // namespace corvo::kafka
