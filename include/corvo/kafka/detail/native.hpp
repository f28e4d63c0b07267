#pragma once
// Internal: librdkafka handles, configuration objects and the eventfd that wakes the loop.
// Users never include this header (it includes librdkafka).

#include <librdkafka/rdkafka.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <corvo/kafka/config.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace corvo::kafka {
class embedded_cluster;
}

namespace corvo::kafka::detail {

namespace asio = boost::asio;

struct conf_deleter {
  void operator()(rd_kafka_conf_t* conf) const noexcept { rd_kafka_conf_destroy(conf); }
};
using conf_ptr = std::unique_ptr<rd_kafka_conf_t, conf_deleter>;

struct queue_deleter {
  void operator()(rd_kafka_queue_t* queue) const noexcept { rd_kafka_queue_destroy(queue); }
};
using queue_ptr = std::unique_ptr<rd_kafka_queue_t, queue_deleter>;

struct partition_list_deleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const noexcept {
    rd_kafka_topic_partition_list_destroy(list);
  }
};
using partition_list_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t, partition_list_deleter>;

struct error_deleter {
  void operator()(rd_kafka_error_t* error) const noexcept { rd_kafka_error_destroy(error); }
};
using error_ptr = std::unique_ptr<rd_kafka_error_t, error_deleter>;

/// A librdkafka configuration ready for rd_kafka_new, and the embedded cluster it points at
/// (kept alive by the client).
struct native_config {
  conf_ptr conf;
  std::shared_ptr<embedded_cluster> embedded;
};

/// Builds the configuration of a `role` client: `defaults` first, then the user's properties,
/// then `forced` (properties corvo's guarantees depend on). An embedded bootstrap is resolved
/// to the shared cluster's addresses. librdkafka's log lines go to corvo's log (channel
/// "kafka"). Throws config_error naming the key of a property librdkafka rejects.
native_config make_native_config(const client_config& config, client_role role,
                                 const std::map<std::string, std::string>& defaults,
                                 const std::map<std::string, std::string>& forced);

/// Creates the handle; throws std::runtime_error with librdkafka's reason. Takes the
/// configuration's ownership on success only (as rd_kafka_new does).
rd_kafka_t* make_handle(rd_kafka_type_t type, conf_ptr& conf);

/// Destroys `handle` (rd_kafka_destroy_flags with `flags`) on a background thread instead of
/// the caller's, keeping `keep` (the embedded cluster it talks to) alive until it is done.
/// For a handle whose destruction may block for librdkafka's own timeouts (a consumer that
/// could not leave its group because every broker is down: seconds), so the loop thread
/// is not held. Every such thread is joined when the process exits (static destruction).
void destroy_in_background(rd_kafka_t* handle, int flags, std::shared_ptr<void> keep);

/// The eventfd librdkafka writes to when one of the attached queues becomes non-empty, as
/// an Asio descriptor.
///
/// The wake-up is edge-triggered: a queue writes once per "non-polling period", so the
/// reader must serve each queue until it is empty after a wake-up (or come back to it by
/// itself later). Not thread-safe; used from the loop thread only.
class queue_wakeup {
 public:
  explicit queue_wakeup(const asio::any_io_executor& executor);
  /// Detaches every queue (librdkafka stops writing) before closing the descriptor.
  ~queue_wakeup();
  queue_wakeup(const queue_wakeup&) = delete;
  queue_wakeup& operator=(const queue_wakeup&) = delete;

  /// Makes `queue` write to this eventfd. The queue must stay alive until detach/close.
  void attach(rd_kafka_queue_t* queue);
  /// Stops `queue`'s io events (before the caller destroys it).
  void detach(rd_kafka_queue_t* queue) noexcept;

  /// Detaches every queue and cancels a pending wait; later waits fail with
  /// operation_aborted.
  void close() noexcept;

  /// Resets the counter after a wake-up (non-blocking read).
  void consume() noexcept;

  asio::posix::stream_descriptor& descriptor() noexcept { return descriptor_; }

 private:
  asio::posix::stream_descriptor descriptor_;
  std::vector<rd_kafka_queue_t*> attached_;
};

}  // namespace corvo::kafka::detail
