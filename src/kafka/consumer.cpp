#include <algorithm>
#include <array>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/core/log.hpp>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/detail/condition.hpp>
#include <corvo/kafka/detail/native.hpp>
#include <corvo/kafka/detail/offset_tracker.hpp>
#include <corvo/kafka/detail/partition_scheduler.hpp>
#include <corvo/kafka/detail/queue_pump.hpp>
#include <corvo/kafka/producer.hpp>
#include <deque>
#include <optional>
#include <sstream>
#include <string>

namespace corvo::kafka {

using boost::system::error_code;
using clock = std::chrono::steady_clock;

namespace {

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
  bool backing_off = false;  // the worker sleeps before retrying a failed message
  // The worker waits for the delivery report of a dead-letter send; a cancellation does not
  // abandon it (see dead_letter), and revocation and shutdown wait for it.
  bool dead_lettering = false;
};
using partition_ptr = std::shared_ptr<partition_state>;

std::string describe(const std::vector<topic_partition>& partitions) {
  std::ostringstream out;
  for (std::size_t i = 0; i < partitions.size(); ++i) {
    out << (i ? ", " : "") << partitions[i].topic << "[" << partitions[i].partition << "]";
  }
  return out.str();
}

std::vector<topic_partition> to_vector(const rd_kafka_topic_partition_list_t* list) {
  std::vector<topic_partition> out;
  if (list == nullptr) {
    return out;
  }
  out.reserve(static_cast<std::size_t>(list->cnt));
  for (int i = 0; i < list->cnt; ++i) {
    out.push_back({list->elems[i].topic, list->elems[i].partition});
  }
  return out;
}

std::string expand_topic(std::string_view pattern, std::string_view topic) {
  std::string out(pattern);
  constexpr std::string_view placeholder = "{topic}";
  for (auto at = out.find(placeholder); at != std::string::npos;
       at = out.find(placeholder, at + topic.size())) {
    out.replace(at, placeholder.size(), topic);
  }
  return out;
}

asio::awaitable<bool> is_cancelled() {
  const auto state = co_await asio::this_coro::cancellation_state;
  co_return state.cancelled() != asio::cancellation_type::none;
}

// Sleeps; false when cancelled.
asio::awaitable<bool> pause_for(clock::duration delay) {
  const auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, delay);
  error_code ec;
  try {
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  } catch (const boost::system::system_error&) {
    co_return false;
  }
  co_return !ec;
}

}  // namespace

struct consumer::impl : std::enable_shared_from_this<consumer::impl> {
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
                           rd_kafka_topic_partition_list_t* list, void* opaque) noexcept {
    auto* self = static_cast<impl*>(opaque);
    try {
      self->rebalance(err, list);
      return;
    } catch (const std::exception& e) {
      try {
        CORVO_LOG(error, "kafka") << "consumer " << self->name
                                  << ": rebalance failed: " << e.what();
      } catch (...) {
      }
    } catch (...) {
    }
    self->rebalance_fallback(err, list);
  }

  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) noexcept {
    auto* self = static_cast<impl*>(opaque);
    try {
      if (err == RD_KAFKA_RESP_ERR__FATAL) {
        std::array<char, 512> text{};
        const auto original = rd_kafka_fatal_error(rk, text.data(), text.size());
        CORVO_LOG(error, "kafka") << "consumer " << self->name << ": fatal error: " << text.data();
        self->fatal = make_error_code(static_cast<int>(original));
        self->request_stop();
        return;
      }
      CORVO_LOG(debug, "kafka") << "consumer " << self->name << ": "
                                << rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)) << ": "
                                << reason;
    } catch (...) {
    }
  }

  static void on_commit(rd_kafka_t*, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t* offsets, void* opaque) noexcept {
    auto* self = static_cast<impl*>(opaque);
    try {
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        CORVO_LOG(warning, "kafka")
            << "consumer " << self->name << ": commit failed: " << rd_kafka_err2str(err);
        return;
      }
      if (log::enabled(log::severity::debug) && offsets != nullptr) {
        std::ostringstream text;
        for (int i = 0; i < offsets->cnt; ++i) {
          text << " " << offsets->elems[i].topic << "[" << offsets->elems[i].partition
               << "]=" << offsets->elems[i].offset;
        }
        CORVO_LOG(debug, "kafka") << "consumer " << self->name << ": committed" << text.str();
      }
    } catch (...) {
    }
  }

  // --- the pump -------------------------------------------------------------------------

  struct drain_fn {
    impl* self;
    void operator()() const { self->drain(); }
  };

  void start_pump() {
    pump.start(*wakeup, shared_from_this(), drain_fn{this});
    // The queue may have filled before the wake-up was armed: the eventfd only fires on
    // an empty-to-non-empty transition after the last poll.
    asio::post(executor, [self = shared_from_this()] { self->drain(); });
  }

  void stop_pump() { pump.stop(); }

  // Serves the consumer queue (rebalances, errors, commits) until it is empty, then takes
  // messages from the partitions' queues into their local buffers. The number of events
  // served is bounded; the rest is served from a fresh handler (so handlers get to run
  // meanwhile, and because the edge-triggered eventfd would not fire again for a queue that
  // was never emptied).
  void drain() {
    if (rk == nullptr || pump.stopped()) {
      return;
    }
    const auto keep = shared_from_this();
    bool more = true;
    for (int budget = 256; budget > 0; --budget) {
      rd_kafka_message_t* raw = rd_kafka_consumer_poll(rk, 0);
      if (raw == nullptr) {
        more = false;
        break;
      }
      on_message(raw);
      if (rk == nullptr || pump.stopped()) {
        return;
      }
    }
    for (std::size_t i = 0; i < partitions.size(); ++i) {
      auto ps = partitions[i];
      if (refill(*ps) > 0) {
        schedule(ps);
      }
    }
    if (more) {
      asio::post(executor, [keep] { keep->drain(); });
    }
  }

  // Takes messages from the partition's librdkafka queue until its local buffer is full or
  // the queue is empty. Returns the number of messages taken.
  std::size_t refill(partition_state& ps) {
    if (!ps.fetch_queue || ps.revoking || stopping || rk == nullptr) {
      return 0;
    }
    std::size_t taken = 0;
    std::array<rd_kafka_message_t*, 64> batch{};
    while (ps.queue.size() < options.max_buffered_per_partition) {
      const std::size_t room =
          std::min(batch.size(), options.max_buffered_per_partition - ps.queue.size());
      const ssize_t n = rd_kafka_consume_batch_queue(ps.fetch_queue.get(), 0, batch.data(), room);
      if (n <= 0) {
        break;
      }
      for (ssize_t i = 0; i < n; ++i) {
        taken += accept(ps, batch[static_cast<std::size_t>(i)]) ? 1 : 0;
      }
    }
    return taken;
  }

  partition_state* find(std::string_view topic, std::int32_t partition) {
    for (auto& ps : partitions) {
      if (ps->partition == partition && ps->topic == topic) {
        return ps.get();
      }
    }
    return nullptr;
  }

  partition_ptr find_shared(std::string_view topic, std::int32_t partition) {
    for (auto& ps : partitions) {
      if (ps->partition == partition && ps->topic == topic) {
        return ps;
      }
    }
    return nullptr;
  }

  // A message from the consumer queue: errors that concern no partition queue, or a message
  // of a partition whose queue was not separated (none, normally).
  void on_message(rd_kafka_message_t* raw) {
    if (raw->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (auto ps = find_shared(rd_kafka_topic_name(raw->rkt), raw->partition)) {
        if (accept(*ps, raw)) {
          schedule(ps);
        }
        return;
      }
      ++counters.dropped;
      rd_kafka_message_destroy(raw);
      return;
    }
    report_error(raw);
  }

  void report_error(rd_kafka_message_t* raw) {
    if (raw->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      CORVO_LOG(warning, "kafka") << "consumer " << name << ": " << rd_kafka_err2name(raw->err)
                                  << ": " << rd_kafka_message_errstr(raw);
    }
    if (raw->err == RD_KAFKA_RESP_ERR__FATAL && !fatal) {
      fatal = make_error_code(static_cast<int>(raw->err));
      request_stop();
    }
    rd_kafka_message_destroy(raw);
  }

  // Queues a fetched message of `ps` for its handler; false when it is not to be handled.
  bool accept(partition_state& ps, rd_kafka_message_t* raw) {
    if (raw->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      report_error(raw);
      return false;
    }
    // Messages of partitions being revoked, or fetched while stopping, are not handled:
    // their offsets are not stored, so whoever owns the partition next gets them.
    if (ps.revoking || stopping) {
      ++counters.dropped;
      rd_kafka_message_destroy(raw);
      return false;
    }
    const auto tracked = ps.tracker.track(raw->offset);
    if (tracked.rewound) {
      rewind(ps, raw->offset);
    }
    ++counters.received;
    ps.queue.push_back({message(raw), tracked.ticket});
    return true;
  }

  // librdkafka's fetch position went back to `offset` (a seek, an offset reset, a truncated
  // log): the buffered messages from there on are stale (fetched again, or gone), and the
  // stored offset goes back if it was past `offset` (see offset_tracker).
  void rewind(partition_state& ps, std::int64_t offset) {
    const auto stale = std::erase_if(
        ps.queue, [offset](const fetched_message& f) { return f.msg.offset() >= offset; });
    counters.dropped += stale;
    CORVO_LOG(info, "kafka") << "consumer " << name << ": " << ps.topic << "[" << ps.partition
                             << "] rewound to offset " << offset << " (" << stale
                             << " buffered message(s) dropped)";
    if (const auto next = ps.tracker.committable(); next && ps.stored && *ps.stored > *next) {
      store_offset(ps, *next, true);
    }
  }

  // Gives up librdkafka's queue of a partition that is no longer ours.
  void release_queue(partition_state& ps) noexcept {
    if (ps.fetch_queue) {
      if (wakeup) {
        wakeup->detach(ps.fetch_queue.get());
      }
      ps.fetch_queue.reset();
    }
  }

  // Stores `next` unless an offset at or past it was stored already (`rewound`: unless it
  // was stored already).
  void store_offset(partition_state& ps, std::int64_t next, bool rewound = false) {
    if (rk == nullptr || ps.lost ||
        (ps.stored && (rewound ? *ps.stored == next : *ps.stored >= next))) {
      return;
    }
    detail::partition_list_ptr list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), ps.topic.c_str(), ps.partition)->offset = next;
    auto err = rd_kafka_offsets_store(rk, list.get());
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      err = list->elems[0].err;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      CORVO_LOG(warning, "kafka") << "consumer " << name << ": cannot store offset " << next
                                  << " of " << ps.topic << "[" << ps.partition
                                  << "]: " << rd_kafka_err2str(err);
      return;
    }
    ps.stored = next;
  }

  // --- dispatch -------------------------------------------------------------------------

  // `ps` has messages: its worker starts now if a slot is free, else it waits in line.
  void schedule(const partition_ptr& ps) {
    if (ps->worker_running || ps->revoking || stopping) {
      return;
    }
    if (slots.want(ps)) {
      start_worker(ps);
    }
  }

  // Starts the workers the scheduler handed slots to.
  void start_workers(std::vector<partition_ptr> next) {
    while (!next.empty()) {
      std::vector<partition_ptr> more;
      for (auto& ps : next) {
        if (ps->queue.empty() || ps->revoking || stopping) {
          auto freed = slots.finished(ps, false);  // nothing to do: give the slot back
          more.insert(more.end(), freed.begin(), freed.end());
        } else {
          start_worker(ps);
        }
      }
      next = std::move(more);
    }
  }

  struct worker_done {
    std::shared_ptr<impl> self;
    partition_ptr ps;
    void operator()(std::exception_ptr e) const { self->on_worker_done(ps, e); }
  };

  void start_worker(const partition_ptr& ps) {
    ps->worker_running = true;
    asio::co_spawn(
        executor, partition_worker(shared_from_this(), ps),
        asio::bind_cancellation_slot(ps->cancel.slot(), worker_done{shared_from_this(), ps}));
  }

  void on_worker_done(const partition_ptr& ps, const std::exception_ptr& e) {
    ps->worker_running = false;
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const boost::system::system_error& ex) {
        if (ex.code() != asio::error::operation_aborted) {
          CORVO_LOG(error, "kafka") << "consumer " << name << ": worker of " << ps->topic << "["
                                    << ps->partition << "] failed: " << ex.what();
        }
      } catch (const std::exception& ex) {
        CORVO_LOG(error, "kafka") << "consumer " << name << ": worker of " << ps->topic << "["
                                  << ps->partition << "] failed: " << ex.what();
      } catch (...) {
      }
    }
    // Yielded its slot to a waiting partition, or stopped early: back in line, behind the
    // partitions already waiting.
    const bool messages_left = !ps->queue.empty() && !ps->revoking && !stopping;
    start_workers(slots.finished(ps, messages_left));
    changed.notify_all();
  }

  // Handles the queued messages of one partition in order. After `fair_share` messages it
  // gives its slot to a waiting partition and goes to the back of the line.
  static asio::awaitable<void> partition_worker(std::shared_ptr<impl> self, partition_ptr ps) {
    constexpr std::size_t fair_share = 64;
    std::size_t handled = 0;
    while (!ps->revoking && !self->stopping) {
      if (ps->queue.size() <= self->options.max_buffered_per_partition / 2) {
        self->refill(*ps);
      }
      if (ps->queue.empty()) {
        co_return;
      }
      if (handled >= fair_share && self->slots.should_yield()) {
        co_return;  // on_worker_done puts this partition behind the waiting ones
      }
      fetched_message next_message = std::move(ps->queue.front());
      ps->queue.pop_front();
      const message& m = next_message.msg;
      const bool finished = co_await process(self, ps, m);
      if (!finished) {
        co_return;  // cancelled: the offset stays where it is
      }
      ++handled;
      // (A message handed out before a rewind finishes nothing: its ticket is gone.)
      if (const auto next = ps->tracker.finish(next_message.ticket); next && !ps->lost) {
        self->store_offset(*ps, *next);
      }
    }
  }

  // Runs the handler for one message with retries, then dead-letters it. True when the
  // message is done with (handled or dead-lettered); false when cancelled.
  static asio::awaitable<bool> process(std::shared_ptr<impl> self, partition_ptr ps,
                                       const message& m) {
    backoff delays(self->options.retry_backoff);
    for (unsigned attempt = 1;; ++attempt) {
      std::string reason;
      std::string kind = "handler_failed";
      bool permanent = false;
      try {
        co_await self->handler(m);
        ++self->counters.handled;
        co_return true;
      } catch (const permanent_error& e) {
        permanent = true;
        reason = e.what();
        kind = e.kind();
      } catch (const std::exception& e) {
        reason = e.what();
      } catch (...) {
        reason = "unknown exception";
      }
      if (co_await is_cancelled()) {
        co_return false;  // cancellation, not a failure of the message
      }
      ++self->counters.failed_attempts;
      const bool have_dead_letters = self->dead_letters != nullptr;
      const bool attempts_left =
          self->options.max_attempts == 0 || attempt < self->options.max_attempts;
      if (have_dead_letters && (permanent || !attempts_left)) {
        co_return co_await dead_letter(self, ps, m, reason, kind, attempt);
      }
      if (ps->revoking || self->stopping) {
        co_return false;  // not retried here: the next owner (or run) handles it again
      }
      const auto delay = delays.next();
      CORVO_LOG(warning, "kafka") << "consumer " << self->name << ": handler failed on "
                                  << m.topic() << "[" << m.partition() << "]@" << m.offset()
                                  << " (attempt " << attempt << "): " << reason << "; retrying in "
                                  << delay.count() << " ms";
      // A revocation or stop cancels this wait (see cancel_backoffs).
      ps->backing_off = true;
      const bool slept = co_await pause_for(delay);
      ps->backing_off = false;
      if (!slept || ps->revoking || self->stopping) {
        co_return false;
      }
    }
  }

  static asio::awaitable<bool> dead_letter(std::shared_ptr<impl> self, partition_ptr ps,
                                           const message& m, std::string reason, std::string kind,
                                           unsigned attempts) {
    const std::string topic = expand_topic(self->options.dead_letter_topic, m.topic());
    std::vector<header> headers;
    for (const auto& h : m.headers()) {
      headers.push_back(
          {std::string(h.name),
           h.value ? std::optional<std::string>(std::string(*h.value)) : std::nullopt});
    }
    headers.push_back({std::string(dead_letter_header::reason), reason});
    headers.push_back({std::string(dead_letter_header::kind), kind});
    headers.push_back({std::string(dead_letter_header::topic), std::string(m.topic())});
    headers.push_back({std::string(dead_letter_header::partition), std::to_string(m.partition())});
    headers.push_back({std::string(dead_letter_header::offset), std::to_string(m.offset())});
    headers.push_back({std::string(dead_letter_header::attempts), std::to_string(attempts)});
    headers.push_back({std::string(dead_letter_header::group), self->group});

    backoff delays(self->options.retry_backoff);
    for (;;) {
      error_code ec;
      // Named, not a temporary in the co_await expression: GCC 12 destroys such temporaries
      // twice.
      outgoing_message copy{topic, m.key(), m.value(), headers};
      // Once handed to librdkafka the message may be delivered whatever happens here: a
      // cancellation (revocation, shutdown) must not abandon the send, or the message's
      // offset is not stored and it is dead-lettered again by the next run. So the send is
      // not bound to this worker's cancellation; its report is awaited (revocation and
      // shutdown wait for it, bounded) and a success counts even when cancelled meanwhile.
      // (Cancelled before the send starts, the co_await throws and nothing is sent.)
      ps->dead_lettering = true;
      try {
        co_await self->dead_letters->async_send(
            std::move(copy),
            asio::bind_cancellation_slot(asio::cancellation_slot(),
                                         asio::redirect_error(asio::use_awaitable, ec)));
      } catch (const boost::system::system_error& e) {
        ec = e.code();
      }
      ps->dead_lettering = false;
      if (!ec) {
        ++self->counters.dead_lettered;
        CORVO_LOG(warning, "kafka")
            << "consumer " << self->name << ": dead-lettered " << m.topic() << "[" << m.partition()
            << "]@" << m.offset() << " to " << topic << " (" << kind << "): " << reason;
        co_return true;
      }
      if (co_await is_cancelled()) {
        co_return false;
      }
      const auto delay = delays.next();
      CORVO_LOG(error, "kafka") << "consumer " << self->name << ": cannot publish " << m.topic()
                                << "[" << m.partition() << "]@" << m.offset()
                                << " to dead-letter topic " << topic << ": " << ec.message()
                                << "; retrying in " << delay.count() << " ms";
      if (!co_await pause_for(delay)) {
        co_return false;
      }
    }
  }

  // --- rebalancing ----------------------------------------------------------------------

  bool cooperative() const {
    return std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
  }

  void apply_assignment(rd_kafka_topic_partition_list_t* list, bool assign) {
    if (cooperative()) {
      detail::error_ptr error(assign ? rd_kafka_incremental_assign(rk, list)
                                     : rd_kafka_incremental_unassign(rk, list));
      if (error) {
        CORVO_LOG(error, "kafka") << "consumer " << name << ": incremental "
                                  << (assign ? "assign" : "unassign")
                                  << " failed: " << rd_kafka_error_string(error.get());
      }
      return;
    }
    const auto err = rd_kafka_assign(rk, assign ? list : nullptr);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      CORVO_LOG(error, "kafka") << "consumer " << name
                                << ": assign failed: " << rd_kafka_err2str(err);
    }
  }

  void rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list) {
    auto changed_partitions = to_vector(list);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      for (const auto& tp : changed_partitions) {
        if (find(tp.topic, tp.partition)) {
          continue;
        }
        auto ps = std::make_shared<partition_state>(tp.topic, tp.partition);
        // Separate the partition's queue from the consumer queue before its fetcher starts
        // (on assign), so every message of it arrives there, in order.
        ps->fetch_queue.reset(rd_kafka_queue_get_partition(rk, tp.topic.c_str(), tp.partition));
        if (ps->fetch_queue) {
          rd_kafka_queue_forward(ps->fetch_queue.get(), nullptr);
          wakeup->attach(ps->fetch_queue.get());
        }
        partitions.push_back(std::move(ps));
      }
      apply_assignment(list, true);
      if (changed_partitions.empty()) {
        return;  // cooperative rebalances hand out empty increments
      }
      counters.assigned += changed_partitions.size();
      CORVO_LOG(info, "kafka") << "consumer " << name << ": assigned "
                               << describe(changed_partitions);
      if (options.on_assigned) {
        asio::post(executor, [self = shared_from_this(), tps = std::move(changed_partitions)] {
          self->options.on_assigned(tps);
        });
      }
      return;
    }
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      CORVO_LOG(error, "kafka") << "consumer " << name
                                << ": rebalance error: " << rd_kafka_err2str(err);
      apply_assignment(nullptr, false);
      return;
    }
    const bool lost = rd_kafka_assignment_lost(rk) != 0;
    std::vector<partition_ptr> revoked;
    for (const auto& tp : changed_partitions) {
      if (auto ps = find_shared(tp.topic, tp.partition)) {
        ps->revoking = true;
        ps->lost = lost;
        counters.dropped += ps->queue.size();
        ps->queue.clear();
        slots.remove(ps);
        // A lost partition's handlers are cancelled at once; a revoked one's only when they
        // wait to retry (a retry would not be finished before the unassign anyway).
        if (ps->worker_running && (lost || ps->backing_off)) {
          ps->cancel.emit(asio::cancellation_type::terminal);
        }
        revoked.push_back(std::move(ps));
      }
    }
    CORVO_LOG(info, "kafka") << "consumer " << name << ": " << (lost ? "lost " : "revoked ")
                             << describe(changed_partitions);
    detail::partition_list_ptr copy(rd_kafka_topic_partition_list_copy(list));
    const bool busy = std::any_of(revoked.begin(), revoked.end(),
                                  [](const partition_ptr& ps) { return ps->worker_running; });
    if (!busy) {
      finish_revoke(std::move(copy), revoked, lost);
      return;
    }
    ++revokes_in_progress;
    asio::co_spawn(executor, wait_and_revoke(shared_from_this(), std::move(copy), revoked, lost),
                   revoke_done{shared_from_this()});
  }

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

  static bool any_running(const std::vector<partition_ptr>& revoked) {
    return std::any_of(revoked.begin(), revoked.end(),
                       [](const partition_ptr& ps) { return ps->worker_running; });
  }

  static bool any_dead_lettering(const std::vector<partition_ptr>& partitions) {
    return std::any_of(partitions.begin(), partitions.end(), [](const partition_ptr& ps) {
      return ps->worker_running && ps->dead_lettering;
    });
  }

  // After cancelling `workers`: waits for them until `deadline`, and beyond it (up to
  // `send_deadline`) while one of them waits for a dead-letter delivery report, which the
  // cancellation does not abandon.
  asio::awaitable<void> wait_for_cancelled(const std::vector<partition_ptr>& workers,
                                           clock::time_point deadline,
                                           clock::time_point send_deadline) {
    for (;;) {
      const auto now = clock::now();
      const bool sending = any_dead_lettering(workers);
      if (!any_running(workers) || (now >= deadline && (!sending || now >= send_deadline))) {
        co_return;
      }
      co_await changed.wait_until(sending ? std::max(deadline, send_deadline) : deadline);
    }
  }

  // Waits (bounded) for the handlers of revoked partitions, then stores and unassigns.
  static asio::awaitable<void> wait_and_revoke(std::shared_ptr<impl> self,
                                               detail::partition_list_ptr list,
                                               std::vector<partition_ptr> revoked, bool lost) {
    auto deadline = clock::now() + self->options.revoke_timeout;
    while (any_running(revoked) && clock::now() < deadline) {
      co_await self->changed.wait_until(deadline);
    }
    if (any_running(revoked)) {
      CORVO_LOG(warning, "kafka") << "consumer " << self->name
                                  << ": handlers of revoked partitions still running after "
                                  << self->options.revoke_timeout.count() << " ms; cancelling them";
      for (auto& ps : revoked) {
        if (ps->worker_running) {
          ps->cancel.emit(asio::cancellation_type::terminal);
        }
      }
      co_await self->wait_for_cancelled(revoked, clock::now() + self->options.revoke_timeout,
                                        clock::now() + self->options.revoke_timeout);
      if (any_running(revoked)) {
        CORVO_LOG(error, "kafka") << "consumer " << self->name
                                  << ": handlers ignore cancellation; unassigning anyway";
      }
    }
    self->finish_revoke(std::move(list), revoked, lost);
  }

  void finish_revoke(detail::partition_list_ptr list, const std::vector<partition_ptr>& revoked,
                     bool lost) {
    for (const auto& ps : revoked) {
      if (!lost) {
        if (const auto next = ps->tracker.committable()) {
          store_offset(*ps, *next);
        }
      }
      ps->lost = true;  // a worker still running must not store for it any more
    }
    if (rk != nullptr && !lost && !auto_commit) {
      // With auto-commit librdkafka commits the stored offsets of removed partitions
      // itself; without it, commit them here, before the next owner reads them.
      rd_kafka_commit(rk, nullptr, 1 /* async */);
    }
    if (rk != nullptr) {
      apply_assignment(list.get(), false);
    }
    for (const auto& ps : revoked) {
      release_queue(*ps);
    }
    std::erase_if(partitions, [&](const partition_ptr& ps) {
      return std::find(revoked.begin(), revoked.end(), ps) != revoked.end();
    });
    counters.revoked += revoked.size();
    if (lost) {
      counters.lost += revoked.size();
    }
    if (options.on_revoked) {
      std::vector<topic_partition> tps = to_vector(list.get());
      asio::post(executor, [self = shared_from_this(), tps = std::move(tps), lost] {
        self->options.on_revoked(tps, lost);
      });
    }
  }

  // Keeps the group moving when rebalance() itself failed.
  void rebalance_fallback(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list) noexcept {
    try {
      apply_assignment(list, err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS);
    } catch (...) {
    }
  }

  // --- lifecycle ------------------------------------------------------------------------

  void request_stop() {
    stop_requested = true;
    stop_signal.notify_all();
  }

  static asio::awaitable<void> shutdown(std::shared_ptr<impl> self) {
    self->stopping = true;
    for (auto& ps : self->partitions) {
      self->counters.dropped += ps->queue.size();
      ps->queue.clear();
      if (ps->worker_running && ps->backing_off) {
        ps->cancel.emit(asio::cancellation_type::terminal);  // no retries while stopping
      }
    }
    self->slots.clear();

    auto deadline = clock::now() + self->options.shutdown_timeout;
    while (self->slots.running() > 0 && clock::now() < deadline) {
      co_await self->changed.wait_until(deadline);
    }
    if (self->slots.running() > 0) {
      CORVO_LOG(warning, "kafka") << "consumer " << self->name << ": " << self->slots.running()
                                  << " handler(s) still running after "
                                  << self->options.shutdown_timeout.count()
                                  << " ms; cancelling them";
      for (auto& ps : self->partitions) {
        if (ps->worker_running) {
          ps->cancel.emit(asio::cancellation_type::terminal);
        }
      }
      co_await self->wait_for_cancelled(self->partitions,
                                        clock::now() + self->options.shutdown_timeout,
                                        clock::now() + self->options.close_timeout);
    }
    deadline = clock::now() + self->options.revoke_timeout;
    while (self->revokes_in_progress > 0 && clock::now() < deadline) {
      co_await self->changed.wait_until(deadline);
    }

    if (!self->auto_commit) {
      rd_kafka_commit(self->rk, nullptr, 1 /* async */);
    }
    // Leave the group from librdkafka's threads; the revocation it triggers arrives on the
    // consumer queue, which the pump keeps serving until the close is complete.
    detail::error_ptr error(rd_kafka_consumer_close_queue(self->rk, self->queue.get()));
    if (error) {
      CORVO_LOG(warning, "kafka") << "consumer " << self->name
                                  << ": close: " << rd_kafka_error_string(error.get());
    }
    deadline = clock::now() + self->options.close_timeout;
    while (!rd_kafka_consumer_closed(self->rk) && clock::now() < deadline) {
      self->drain();
      co_await self->changed.wait_until(
          std::min(deadline, clock::now() + std::chrono::milliseconds{10}));
    }
    self->closed = rd_kafka_consumer_closed(self->rk) != 0;
    if (!self->closed) {
      CORVO_LOG(warning, "kafka") << "consumer " << self->name << ": not closed within "
                                  << self->options.close_timeout.count() << " ms";
    }
    self->stop_pump();
    for (auto& ps : self->partitions) {
      self->release_queue(*ps);
    }
    self->partitions.clear();
    if (self->dead_letters) {
      co_await self->dead_letters->close(self->options.close_timeout);
    }
    CORVO_LOG(info, "kafka") << "consumer " << self->name << ": closed";
  }

  void destroy_handle() noexcept {
    if (!pump.stopped()) {
      stop_pump();
    }
    // Messages and queues refer to the handle: release them first.
    slots.clear();
    for (auto& ps : partitions) {
      ps->queue.clear();
      release_queue(*ps);
    }
    partitions.clear();
    wakeup.reset();
    queue.reset();
    if (rk != nullptr) {
      if (closed) {
        rd_kafka_destroy(rk);
      } else {
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
      }
      rk = nullptr;
    }
    dead_letters.reset();
  }
};

consumer::consumer(executor_type executor, const client_config& config, consumer_options options)
    : impl_(std::make_shared<impl>(std::move(executor), std::move(options))) {
  auto& self = *impl_;
  const auto group = config.get(client_role::consumer, "group.id");
  if (!group || group->empty()) {
    const auto key = config.key_of(client_role::consumer, "group.id");
    throw config_error(key, "missing key '" + key + "': a consumer needs a group id");
  }
  if (self.options.topics.empty()) {
    throw std::invalid_argument("kafka::consumer: no topics to subscribe to");
  }
  if (self.options.max_partitions_in_flight == 0) {
    self.options.max_partitions_in_flight = 1;
  }
  if (self.options.max_buffered_per_partition == 0) {
    self.options.max_buffered_per_partition = 1;
  }
  self.group = *group;
  auto native = detail::make_native_config(config, client_role::consumer,
                                           {{"partition.assignment.strategy", "cooperative-sticky"},
                                            {"auto.offset.reset", "earliest"},
                                            {"enable.auto.commit", "true"}},
                                           {{"enable.auto.offset.store", "false"}});
  const auto auto_commit = config.get(client_role::consumer, "enable.auto.commit");
  self.auto_commit = !auto_commit || *auto_commit == "true";
  rd_kafka_conf_set_rebalance_cb(native.conf.get(), &impl::on_rebalance);
  rd_kafka_conf_set_error_cb(native.conf.get(), &impl::on_error);
  rd_kafka_conf_set_offset_commit_cb(native.conf.get(), &impl::on_commit);
  rd_kafka_conf_set_opaque(native.conf.get(), impl_.get());
  self.embedded = std::move(native.embedded);
  self.rk = detail::make_handle(RD_KAFKA_CONSUMER, native.conf);
  self.name = self.group + " (" + rd_kafka_name(self.rk) + ")";
  // Everything (rebalances, errors, messages) arrives on the consumer queue.
  rd_kafka_poll_set_consumer(self.rk);
  self.queue.reset(rd_kafka_queue_get_consumer(self.rk));
  self.wakeup = std::make_unique<detail::queue_wakeup>(self.executor);
  self.wakeup->attach(self.queue.get());
  if (!self.options.dead_letter_topic.empty()) {
    self.dead_letters = std::make_unique<producer>(self.executor, config);
  }
}

consumer::~consumer() {
  if (!impl_) {
    return;
  }
  if (impl_->running) {
    impl_->request_stop();  // run() holds the impl and finishes the close
    return;
  }
  impl_->destroy_handle();
}

consumer::consumer(consumer&&) noexcept = default;

asio::awaitable<void> consumer::run(handler_type handler) {
  const auto self = impl_;
  if (self->running || self->closed) {
    throw std::logic_error("kafka::consumer::run: called twice");
  }
  if (!handler) {
    throw std::invalid_argument("kafka::consumer::run: empty handler");
  }
  self->running = true;
  self->handler = std::move(handler);
  struct running_guard {
    impl* self;
    ~running_guard() { self->running = false; }
  } guard{self.get()};

  detail::partition_list_ptr topics(
      rd_kafka_topic_partition_list_new(static_cast<int>(self->options.topics.size())));
  for (const auto& topic : self->options.topics) {
    rd_kafka_topic_partition_list_add(topics.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  if (const auto err = rd_kafka_subscribe(self->rk, topics.get());
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw boost::system::system_error(make_error_code(static_cast<int>(err)),
                                      "kafka::consumer: subscribe");
  }
  self->start_pump();
  CORVO_LOG(info, "kafka") << "consumer " << self->name << ": subscribed to "
                           << self->options.topics.size() << " topic(s)";

  bool cancelled = false;
  try {
    while (!self->stop_requested) {
      co_await self->stop_signal.wait_until(clock::time_point::max());
    }
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::operation_aborted) {
      throw;
    }
    cancelled = true;
  }
  if (cancelled) {
    // Asio 1.26 fails every further co_await of a cancelled coroutine; the orderly close
    // below needs them.
    co_await asio::this_coro::reset_cancellation_state();
  }
  co_await impl::shutdown(self);
  if (cancelled) {
    throw boost::system::system_error(asio::error::operation_aborted, "kafka::consumer::run");
  }
  if (self->fatal) {
    throw boost::system::system_error(self->fatal, "kafka::consumer");
  }
}

void consumer::stop() {
  impl_->request_stop();
}

std::vector<topic_partition> consumer::assignment() const {
  std::vector<topic_partition> out;
  for (const auto& ps : impl_->partitions) {
    if (!ps->revoking) {
      out.push_back({ps->topic, ps->partition});
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

consumer_stats consumer::stats() const {
  consumer_stats s = impl_->counters;
  s.in_flight = impl_->slots.running();
  for (const auto& ps : impl_->partitions) {
    s.buffered += ps->queue.size();
  }
  return s;
}

const std::string& consumer::group_id() const noexcept {
  return impl_->group;
}

consumer::executor_type consumer::get_executor() const noexcept {
  return impl_->executor;
}

rd_kafka_s* consumer::native_handle() const noexcept {
  return impl_->rk;
}

}  // namespace corvo::kafka
