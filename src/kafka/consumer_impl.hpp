#pragma once
// Internal to src/kafka (not installed): kafka::consumer's state, shared by
//   consumer.cpp            the public API, librdkafka callbacks, the pump (fetching into
//                           the partitions' buffers, offsets) and the lifecycle (run,
//                           shutdown);
//   consumer_dispatch.cpp   the partition workers: slots (detail::partition_scheduler),
//                           handling in order, retries, dead letters;
//   consumer_rebalance.cpp  assignment and revocation.
// See consumer.hpp for the guarantees.

#include <boost/asio/cancellation_signal.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <corvo/core/log.hpp>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/detail/condition.hpp>
#include <corvo/kafka/detail/native.hpp>
#include <corvo/kafka/detail/offset_tracker.hpp>
#include <corvo/kafka/detail/partition_scheduler.hpp>
#include <corvo/kafka/detail/queue_pump.hpp>
#include <corvo/kafka/producer.hpp>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::kafka {

namespace detail {

// A fetched message waiting for its handler, with its offset_tracker ticket.
struct fetched_message {
  message msg;
  std::uint64_t ticket;
};

// Every fetched message of one assigned partition, from the fetch to its stored offset.
struct partition_state {
  partition_state(std::string t, std::int32_t p) : topic(std::move(t)), partition(p) {}

  std::string topic;
  std::int32_t partition;
  // librdkafka's queue of this partition's fetched messages (not forwarded to the consumer
  // queue): messages are taken from it only while `queue` has room, so librdkafka's own
  // prefetch limits bound what is buffered.
  detail::queue_ptr fetch_queue;
  std::deque<fetched_message> queue;  // taken from fetch_queue, not yet handed to the handler
  detail::offset_tracker tracker;
  asio::cancellation_signal cancel;  // cancels the running worker
  std::optional<std::int64_t> stored;
  bool worker_running = false;
  bool revoking = false;     // revoked: nothing more is dispatched
  bool lost = false;         // lost: nothing is stored any more
  unsigned backing_off = 0;  // handlers sleeping before retrying a failed message
  // Handlers waiting for the delivery report of a dead-letter send; a cancellation does not
  // abandon it (see dead_letter), and revocation and shutdown wait for it.
  unsigned dead_lettering = 0;
  // Pipelined handling (max_in_flight_per_partition > 1): the handlers running now, each
  // with its cancellation signal; `handler_done` is notified when one ends.
  std::size_t handlers_running = 0;
  std::list<asio::cancellation_signal> handler_cancels;
  detail::condition handler_done;
};
using partition_ptr = std::shared_ptr<partition_state>;

}  // namespace detail

struct consumer::impl : std::enable_shared_from_this<consumer::impl> {
  using clock = std::chrono::steady_clock;
  using error_code = boost::system::error_code;
  using fetched_message = detail::fetched_message;
  using partition_state = detail::partition_state;
  using partition_ptr = detail::partition_ptr;

  impl(executor_type ex, consumer_options opts)
      : executor(std::move(ex)),
        options(std::move(opts)),
        pump(executor, options.poll_interval),
        slots(options.max_partitions_in_flight) {}

  ~impl() { destroy_handle(); }

  executor_type executor;
  consumer_options options;
  std::string group;
  std::string name;  // for logs: group and librdkafka's client name
  bool auto_commit = true;
  std::shared_ptr<embedded_cluster> embedded;
  rd_kafka_t* rk = nullptr;
  detail::queue_ptr queue;
  std::unique_ptr<detail::queue_wakeup> wakeup;
  detail::queue_pump pump;
  std::unique_ptr<producer> dead_letters;
  handler_type handler;

  std::vector<partition_ptr> partitions;             // assigned (revoking ones until unassigned)
  detail::partition_scheduler<partition_ptr> slots;  // running workers, partitions in line
  std::size_t revokes_in_progress = 0;
  detail::condition changed;  // a worker ended or a revocation finished
  detail::condition stop_signal;

  bool running = false;  // run() is active
  bool stop_requested = false;
  bool stopping = false;  // shutting down: nothing more is dispatched
  bool closed = false;    // rd_kafka_consumer_closed
  error_code fatal;
  consumer_stats counters;

  // --- librdkafka callbacks: served by rd_kafka_consumer_poll on the loop; noexcept -------

  static void on_rebalance(rd_kafka_t*, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* list, void* opaque) noexcept;

  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) noexcept;

  static int on_statistics(rd_kafka_t*, char* json, std::size_t length, void* opaque) noexcept;
  static void on_commit(rd_kafka_t*, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t* offsets, void* opaque) noexcept;

  // --- the pump -------------------------------------------------------------------------

  struct drain_fn {
    impl* self;
    void operator()() const { self->drain(); }
  };

  void start_pump();

  void stop_pump() { pump.stop(); }

  // Serves the consumer queue (rebalances, errors, commits) until it is empty, then takes
  // messages from the partitions' queues into their local buffers. The number of events
  // served is bounded; the rest is served from a fresh handler (so handlers get to run
  // meanwhile, and because the edge-triggered eventfd would not fire again for a queue that
  // was never emptied).
  void drain();

  // Takes messages from the partition's librdkafka queue until its local buffer is full or
  // the queue is empty. Returns the number of messages taken.
  std::size_t refill(partition_state& ps);

  partition_state* find(std::string_view topic, std::int32_t partition);

  partition_ptr find_shared(std::string_view topic, std::int32_t partition);

  // A message from the consumer queue: errors that concern no partition queue, or a message
  // of a partition whose queue was not separated (none, normally).
  void on_message(rd_kafka_message_t* raw);

  void report_error(rd_kafka_message_t* raw);

  // Queues a fetched message of `ps` for its handler; false when it is not to be handled.
  bool accept(partition_state& ps, rd_kafka_message_t* raw);

  // librdkafka's fetch position went back to `offset` (a seek, an offset reset, a truncated
  // log): the buffered messages from there on are stale (fetched again, or gone), and the
  // stored offset goes back if it was past `offset` (see offset_tracker).
  void rewind(partition_state& ps, std::int64_t offset);

  // Gives up librdkafka's queue of a partition that is no longer ours.
  void release_queue(partition_state& ps) noexcept;

  // Stores `next` unless an offset at or past it was stored already (`rewound`: unless it
  // was stored already).
  void store_offset(partition_state& ps, std::int64_t next, bool rewound = false);

  // --- dispatch -------------------------------------------------------------------------

  // `ps` has messages: its worker starts now if a slot is free, else it waits in line.
  void schedule(const partition_ptr& ps);

  // Starts the workers the scheduler handed slots to.
  void start_workers(std::vector<partition_ptr> next);

  struct worker_done {
    std::shared_ptr<impl> self;
    partition_ptr ps;
    void operator()(std::exception_ptr e) const { self->on_worker_done(ps, e); }
  };

  void start_worker(const partition_ptr& ps);

  void on_worker_done(const partition_ptr& ps, const std::exception_ptr& e);

  // Handles the queued messages of one partition in order. After `fair_share` messages it
  // gives its slot to a waiting partition and goes to the back of the line.
  static asio::awaitable<void> partition_worker(std::shared_ptr<impl> self, partition_ptr ps);

  // The worker of a partition whose handlers are pipelined (max_in_flight_per_partition >
  // 1): starts handlers in offset order up to the bound; when cancelled, cancels them all;
  // returns once none runs.
  static asio::awaitable<void> pipelined_worker(std::shared_ptr<impl> self, partition_ptr ps);

  // One pipelined handler: owns its message.
  static asio::awaitable<bool> process_owned(std::shared_ptr<impl> self, partition_ptr ps,
                                             fetched_message fetched);

  struct pipelined_done {
    std::shared_ptr<impl> self;
    partition_ptr ps;
    std::list<asio::cancellation_signal>::iterator signal;
    std::uint64_t ticket;
    void operator()(std::exception_ptr e, bool finished) const;
  };

  // Runs the handler for one message with retries, then dead-letters it. True when the
  // message is done with (handled or dead-lettered); false when cancelled.
  static asio::awaitable<bool> process(std::shared_ptr<impl> self, partition_ptr ps,
                                       const message& m);

  static asio::awaitable<bool> dead_letter(std::shared_ptr<impl> self, partition_ptr ps,
                                           const message& m, std::string reason, std::string kind,
                                           unsigned attempts);

  // --- rebalancing ----------------------------------------------------------------------

  bool cooperative() const;

  void apply_assignment(rd_kafka_topic_partition_list_t* list, bool assign);

  void rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list);

  struct revoke_done {
    std::shared_ptr<impl> self;
    void operator()(std::exception_ptr e) const {
      --self->revokes_in_progress;
      if (e) {
        CORVO_LOG(error, "kafka") << "consumer " << self->name << ": revocation failed";
      }
      self->changed.notify_all();
    }
  };

  static bool any_running(const std::vector<partition_ptr>& revoked);

  static bool any_dead_lettering(const std::vector<partition_ptr>& partitions);

  // After cancelling `workers`: waits for them until `deadline`, and beyond it (up to
  // `send_deadline`) while one of them waits for a dead-letter delivery report, which the
  // cancellation does not abandon.
  asio::awaitable<void> wait_for_cancelled(const std::vector<partition_ptr>& workers,
                                           clock::time_point deadline,
                                           clock::time_point send_deadline);

  // Waits (bounded) for the handlers of revoked partitions, then stores and unassigns.
  static asio::awaitable<void> wait_and_revoke(std::shared_ptr<impl> self,
                                               detail::partition_list_ptr list,
                                               std::vector<partition_ptr> revoked, bool lost);

  void finish_revoke(detail::partition_list_ptr list, const std::vector<partition_ptr>& revoked,
                     bool lost);

  // Keeps the group moving when rebalance() itself failed.
  void rebalance_fallback(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list) noexcept;

  // --- lifecycle ------------------------------------------------------------------------

  void request_stop();

  static asio::awaitable<void> shutdown(std::shared_ptr<impl> self);

  void destroy_handle() noexcept;
};

}  // namespace corvo::kafka
