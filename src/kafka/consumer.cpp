#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>
#include <sstream>

#include "consumer_impl.hpp"

namespace corvo::kafka {

using clock = std::chrono::steady_clock;

// --- librdkafka callbacks: served by rd_kafka_consumer_poll on the loop; noexcept ---------

void consumer::impl::on_rebalance(rd_kafka_t*, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t* list, void* opaque) noexcept {
  auto* self = static_cast<impl*>(opaque);
  try {
    self->rebalance(err, list);
    return;
  } catch (const std::exception& e) {
    try {
      CORVO_LOG(error, "kafka") << "consumer " << self->name << ": rebalance failed: " << e.what();
    } catch (...) {
    }
  } catch (...) {
  }
  self->rebalance_fallback(err, list);
}

void consumer::impl::on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) noexcept {
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

void consumer::impl::on_commit(rd_kafka_t*, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t* offsets, void* opaque) noexcept {
  auto* self = static_cast<impl*>(opaque);
  try {
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
      CORVO_LOG(warning, "kafka") << "consumer " << self->name
                                  << ": commit failed: " << rd_kafka_err2str(err);
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

// Returning 0 lets librdkafka free the JSON.
int consumer::impl::on_statistics(rd_kafka_t*, char* json, std::size_t length,
                                  void* opaque) noexcept {
  auto* self = static_cast<impl*>(opaque);
  try {
    self->options.on_statistics(std::string_view(json, length));
  } catch (const std::exception& e) {
    try {
      CORVO_LOG(warning, "kafka") << "consumer " << self->name
                                  << ": statistics callback failed: " << e.what();
    } catch (...) {
    }
  } catch (...) {
  }
  return 0;
}

// --- the pump ---------------------------------------------------------------------------

void consumer::impl::start_pump() {
  pump.start(*wakeup, shared_from_this(), drain_fn{this});
  // The queue may have filled before the wake-up was armed: the eventfd only fires on
  // an empty-to-non-empty transition after the last poll.
  asio::post(executor, [self = shared_from_this()] { self->drain(); });
}

void consumer::impl::drain() {
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

std::size_t consumer::impl::refill(partition_state& ps) {
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

detail::partition_state* consumer::impl::find(std::string_view topic, std::int32_t partition) {
  for (auto& ps : partitions) {
    if (ps->partition == partition && ps->topic == topic) {
      return ps.get();
    }
  }
  return nullptr;
}

detail::partition_ptr consumer::impl::find_shared(std::string_view topic, std::int32_t partition) {
  for (auto& ps : partitions) {
    if (ps->partition == partition && ps->topic == topic) {
      return ps;
    }
  }
  return nullptr;
}

void consumer::impl::on_message(rd_kafka_message_t* raw) {
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

void consumer::impl::report_error(rd_kafka_message_t* raw) {
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

bool consumer::impl::accept(partition_state& ps, rd_kafka_message_t* raw) {
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

void consumer::impl::rewind(partition_state& ps, std::int64_t offset) {
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

void consumer::impl::release_queue(partition_state& ps) noexcept {
  if (ps.fetch_queue) {
    if (wakeup) {
      wakeup->detach(ps.fetch_queue.get());
    }
    ps.fetch_queue.reset();
  }
}

void consumer::impl::store_offset(partition_state& ps, std::int64_t next, bool rewound) {
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
    CORVO_LOG(warning, "kafka") << "consumer " << name << ": cannot store offset " << next << " of "
                                << ps.topic << "[" << ps.partition
                                << "]: " << rd_kafka_err2str(err);
    return;
  }
  ps.stored = next;
}

// --- lifecycle --------------------------------------------------------------------------

void consumer::impl::request_stop() {
  stop_requested = true;
  stop_signal.notify_all();
}

asio::awaitable<void> consumer::impl::shutdown(std::shared_ptr<impl> self) {
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
                                << self->options.shutdown_timeout.count() << " ms; cancelling them";
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

void consumer::impl::destroy_handle() noexcept {
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
      // Not closed (the group could not be left: brokers down): librdkafka's teardown may
      // block for its own timeouts (~session.timeout.ms measured), so it runs off the loop
      // thread (health_failover_kafka_test). Nothing of this consumer is left in it: the
      // pump is stopped, the queues and messages released.
      detail::destroy_in_background(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE, embedded);
    }
    rk = nullptr;
  }
  dead_letters.reset();
}
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
  if (self.options.on_statistics) {
    rd_kafka_conf_set_stats_cb(native.conf.get(), &impl::on_statistics);
  }
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
