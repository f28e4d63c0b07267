#include <corvo/core/detail/complete_later.hpp>
#include <corvo/core/error.hpp>
#include <corvo/core/log.hpp>
#include <corvo/kafka/detail/condition.hpp>
#include <corvo/kafka/detail/native.hpp>
#include <corvo/kafka/detail/queue_pump.hpp>
#include <corvo/kafka/producer.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/system_error.hpp>

#include <array>
#include <deque>
#include <map>
#include <string>

namespace corvo::kafka {

using boost::system::error_code;

namespace {

// A copy of a message that waits for local queue space (the caller's views may go away).
struct message_copy {
  std::string topic;
  std::optional<std::string> key;
  std::string value;
  std::vector<header> headers;
  std::int32_t partition = any_partition;
};

// One send, from the initiating call until both its handler has been completed and
// librdkafka (and a possibly armed cancellation slot) no longer refer to it. Recycled
// through op_store; kept small, as up to queue.buffering.max.messages of them are live.
struct send_op {
  // (An optional, emplaced and reset: Boost 1.81's any_completion_handler move assignment
  // copies from an lvalue, which selects the converting constructor and recurses forever.)
  std::optional<producer::send_handler> handler;
  std::unique_ptr<message_copy> copy;  // only while waiting for queue space

  bool live = false;             // acquired from the store, not released yet
  bool complete_inline = false;  // the handler's executor is the producer's
  bool completed = false;        // the handler has been (or is being) completed
  bool queued = false;           // in impl::waiting
  bool in_librdkafka = false;    // produced; its delivery report is still to come
  bool slot_armed = false;       // a cancellation handler refers to this op
};

// Send operations, recycled: in the steady state a send allocates nothing of its own.
class op_store {
 public:
  op_store() = default;
  op_store(const op_store&) = delete;
  op_store& operator=(const op_store&) = delete;

  send_op& acquire() {
    if (free_.empty()) {
      blocks_.push_back(std::make_unique<send_op[]>(block_size));
      for (std::size_t i = 0; i < block_size; ++i) {
        free_.push_back(&blocks_.back()[block_size - 1 - i]);
      }
    }
    send_op* op = free_.back();
    free_.pop_back();
    op->live = true;
    return *op;
  }

  void release(send_op& op) {
    op.handler.reset();
    op.copy.reset();
    op.live = op.complete_inline = op.completed = op.queued = op.in_librdkafka = op.slot_armed =
        false;
    free_.push_back(&op);
  }

  // Calls f for every live op (shutdown only: it visits every slot of every block, which
  // keeps acquire/release free of list bookkeeping that would touch other ops' memory).
  template <class F>
  void for_each(F f) {
    for (auto& block : blocks_) {
      for (std::size_t i = 0; i < block_size; ++i) {
        if (block[i].live) {
          f(block[i]);  // f may release it
        }
      }
    }
  }

 private:
  static constexpr std::size_t block_size = 256;
  std::vector<std::unique_ptr<send_op[]>> blocks_;
  std::vector<send_op*> free_;
};

struct delivery {
  send_op* op;
  rd_kafka_resp_err_t error;
  std::int32_t partition;
  std::int64_t offset;
};

}  // namespace

struct producer::impl : std::enable_shared_from_this<producer::impl> {
  impl(executor_type ex, producer_options opts)
      : executor(std::move(ex)), options(opts), pump(executor, options.poll_interval) {}

  ~impl() { destroy_handle(); }

  executor_type executor;
  producer_options options;
  std::shared_ptr<embedded_cluster> embedded;  // keeps an embedded cluster alive
  rd_kafka_t* rk = nullptr;
  detail::queue_ptr main_queue;
  std::unique_ptr<detail::queue_wakeup> wakeup;
  detail::queue_pump pump;
  std::map<std::string, rd_kafka_topic_t*, std::less<>> topics;
  std::string_view last_topic_name;  // a key of `topics`
  rd_kafka_topic_t* last_topic = nullptr;

  op_store ops;
  std::size_t open_sends = 0;  // sends whose handler is not completed yet
  detail::condition capacity;  // notified when sends complete (wait_below)
  std::deque<send_op*> waiting;
  std::vector<delivery> reports;  // filled by the delivery report callback during a poll
  std::vector<delivery> reports_spare;
  error_code fatal;
  bool closing = false;
  bool stopped = false;
  producer_stats counters;

  // --- librdkafka callbacks: served by rd_kafka_poll on the loop thread; noexcept -------

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) noexcept {
    auto* self = static_cast<impl*>(opaque);
    try {
      self->reports.push_back(
          {static_cast<send_op*>(m->_private), m->err, m->partition, m->offset});
    } catch (...) {
      CORVO_LOG(error, "kafka") << "producer: cannot record a delivery report (out of memory)";
    }
  }

  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) noexcept {
    auto* self = static_cast<impl*>(opaque);
    try {
      if (err == RD_KAFKA_RESP_ERR__FATAL) {
        std::array<char, 512> text{};
        const auto original = rd_kafka_fatal_error(rk, text.data(), text.size());
        self->fatal = make_error_code(static_cast<int>(original));
        CORVO_LOG(error, "kafka") << "producer " << rd_kafka_name(rk)
                                  << ": fatal error: " << text.data();
        return;
      }
      // Connection losses and "all brokers down" are retried by librdkafka itself (sends
      // keep waiting until message.timeout.ms) and already logged through the log callback.
      CORVO_LOG(debug, "kafka") << "producer " << rd_kafka_name(rk) << ": "
                                << rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)) << ": "
                                << reason;
    } catch (...) {
    }
  }

  // Served by rd_kafka_poll on the loop, like delivery reports. Returning 0 lets librdkafka
  // free the JSON.
  static int on_statistics(rd_kafka_t*, char* json, std::size_t length, void* opaque) noexcept {
    auto* self = static_cast<impl*>(opaque);
    try {
      self->options.on_statistics(std::string_view(json, length));
    } catch (const std::exception& e) {
      CORVO_LOG(warning, "kafka") << "producer statistics callback failed: " << e.what();
    }
    return 0;
  }

  // --- the pump -------------------------------------------------------------------------

  struct drain_fn {
    impl* self;
    void operator()() const { self->drain(); }
  };

  void start_pump() { pump.start(*wakeup, shared_from_this(), drain_fn{this}); }

  void stop_pump() {
    stopped = true;
    capacity.notify_all();
    pump.stop();
  }

  // Serves the delivery reports librdkafka has queued. rd_kafka_poll serves every report
  // present when it is called; a few rounds catch reports that arrive meanwhile, and if
  // they keep coming the rest is served in a later handler so other work can run (the
  // edge-triggered eventfd would not fire again for a queue that was never emptied).
  void drain() {
    if (rk == nullptr) {
      return;
    }
    const auto keep = shared_from_this();
    for (int round = 0; round < 4; ++round) {
      const int served = rd_kafka_poll(rk, 0);
      complete_reports();
      produce_waiting();
      if (served == 0 || rk == nullptr) {
        return;
      }
    }
    asio::post(executor, [keep] { keep->drain(); });
  }

  // --- sends ----------------------------------------------------------------------------

  rd_kafka_topic_t* topic_handle(std::string_view name) {
    if (last_topic != nullptr && name == last_topic_name) {
      return last_topic;  // the common case: one topic after another
    }
    if (const auto it = topics.find(name); it != topics.end()) {
      last_topic_name = it->first;
      last_topic = it->second;
      return it->second;
    }
    const std::string owned(name);
    rd_kafka_topic_t* handle = rd_kafka_topic_new(rk, owned.c_str(), nullptr);
    if (handle == nullptr) {
      return nullptr;
    }
    topics.emplace(owned, handle);
    return handle;
  }

  rd_kafka_resp_err_t produce(send_op& op, std::string_view topic,
                              std::optional<std::string_view> key, std::string_view value,
                              const std::vector<header>& headers, std::int32_t partition) {
    rd_kafka_topic_t* rkt = topic_handle(topic);
    if (rkt == nullptr) {
      return rd_kafka_last_error();
    }
    const void* key_data = key ? key->data() : nullptr;
    const std::size_t key_size = key ? key->size() : 0;
    void* value_data = const_cast<char*>(value.data());
    const std::size_t value_size = value.size();
    if (headers.empty()) {
      // The common case through rd_kafka_produce, which takes its arguments directly:
      // rd_kafka_producev's argument list parsing cost ~55 instructions per message more
      // (callgrind), a tenth of what corvo added to a send. F_COPY: librdkafka copies key
      // and value, so the caller's views may go away.
      if (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, value_data, value_size, key_data,
                           key_size, &op) != 0) {
        return rd_kafka_last_error();
      }
      op.in_librdkafka = true;
      return RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    rd_kafka_headers_t* native_headers = nullptr;
    if (!headers.empty()) {
      native_headers = rd_kafka_headers_new(headers.size());
      for (const auto& h : headers) {
        rd_kafka_header_add(native_headers, h.name.data(), static_cast<ssize_t>(h.name.size()),
                            h.value ? h.value->data() : nullptr,
                            h.value ? static_cast<ssize_t>(h.value->size()) : 0);
      }
    }
    // (librdkafka's V_ macros cast their arguments unparenthesized: pass plain variables.)
    // F_COPY: librdkafka copies key and value, so the caller's views may go away.
    const auto err = rd_kafka_producev(
        rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(value_data, value_size),
        RD_KAFKA_V_KEY(key_data, key_size), RD_KAFKA_V_HEADERS(native_headers),
        RD_KAFKA_V_OPAQUE(&op), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && native_headers != nullptr) {
      rd_kafka_headers_destroy(native_headers);  // owned by the message only on success
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      op.in_librdkafka = true;
    }
    return err;
  }

  struct cancel_send {
    impl* self;
    send_op* op;
    void operator()(asio::cancellation_type) const { self->cancel(*op); }
  };

  void start(outgoing_message&& message, send_handler handler, bool complete_inline) {
    ++counters.sent;
    if (stopped || closing || rk == nullptr) {
      ++counters.failed;
      corvo::detail::complete_later(executor, std::move(handler),
                                    error_code(corvo::error::stopping), delivery_report{});
      return;
    }
    if (fatal) {
      ++counters.failed;
      corvo::detail::complete_later(executor, std::move(handler), fatal, delivery_report{});
      return;
    }
    auto& op = ops.acquire();
    op.handler.emplace(std::move(handler));
    op.complete_inline = complete_inline;
    ++open_sends;
    if (auto slot = asio::get_associated_cancellation_slot(*op.handler); slot.is_connected()) {
      slot.assign(cancel_send{this, &op});
      op.slot_armed = true;
    }
    if (waiting.empty()) {
      const auto err = produce(op, message.topic, message.key, message.value, message.headers,
                               message.partition);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        return;
      }
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        fail_later(op, make_error_code(static_cast<int>(err)));
        return;
      }
    }
    // Queue full (or earlier sends already waiting: keep their order). Keep a copy.
    ++counters.queue_full;
    op.copy = std::make_unique<message_copy>();
    op.copy->topic = message.topic;
    if (message.key) {
      op.copy->key.emplace(*message.key);
    }
    op.copy->value = message.value;
    op.copy->headers = std::move(message.headers);
    op.copy->partition = message.partition;
    op.queued = true;
    waiting.push_back(&op);
  }

  void produce_waiting() {
    while (!waiting.empty() && rk != nullptr) {
      send_op& op = *waiting.front();
      if (!op.completed) {
        const auto& copy = *op.copy;
        const auto err =
            produce(op, copy.topic, copy.key, copy.value, copy.headers, copy.partition);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
          return;
        }
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          waiting.pop_front();
          op.queued = false;
          complete_now(op, make_error_code(static_cast<int>(err)), {});
          continue;
        }
        op.copy.reset();  // librdkafka has its own copy now
      }
      waiting.pop_front();
      op.queued = false;
      maybe_free(op);
    }
  }

  void complete_reports() {
    if (reports.empty()) {
      return;
    }
    std::swap(reports, reports_spare);
    for (const auto& report : reports_spare) {
      send_op& op = *report.op;
      op.in_librdkafka = false;
      if (op.completed) {
        maybe_free(op);  // abandoned by a cancellation: the report is discarded
        continue;
      }
      const error_code ec = report.error == RD_KAFKA_RESP_ERR_NO_ERROR
                                ? error_code{}
                                : make_error_code(static_cast<int>(report.error));
      complete_now(op, ec, delivery_report{report.partition, report.offset});
    }
    reports_spare.clear();
    capacity.notify_all();
  }

  // Marks `op` completed and hands out its handler, with our cancellation handler removed
  // from its slot (the slot outlives this send) unless `keep_slot`.
  send_handler take_handler(send_op& op) {
    op.completed = true;
    --open_sends;
    send_handler handler(std::move(*op.handler));
    op.handler.reset();
    if (op.slot_armed) {
      if (auto slot = asio::get_associated_cancellation_slot(handler); slot.is_connected()) {
        slot.clear();
      }
      op.slot_armed = false;
    }
    return handler;
  }

  // Completes `op` from a handler of our own (not from an initiating function): directly
  // when the handler belongs to this producer's executor (we are running on it), else
  // through its associated executor.
  void complete_now(send_op& op, error_code ec, delivery_report report) {
    const bool direct = op.complete_inline;
    auto handler = take_handler(op);
    maybe_free(op);
    count(ec);
    if (direct) {
      std::move(handler)(ec, report);
      return;
    }
    auto handler_executor = asio::get_associated_executor(handler, executor);
    asio::dispatch(handler_executor, [handler = std::move(handler), ec, report]() mutable {
      std::move(handler)(ec, report);
    });
  }

  // Completes `op` later: for failures detected inside the initiating function.
  void fail_later(send_op& op, error_code ec) {
    auto handler = take_handler(op);
    maybe_free(op);
    count(ec);
    capacity.notify_all();
    corvo::detail::complete_later(executor, std::move(handler), ec, delivery_report{});
  }

  void count(const error_code& ec) {
    if (ec) {
      ++counters.failed;
    } else {
      ++counters.delivered;
    }
  }

  // A cancellation handler runs inside the slot it is installed in, so it cannot clear that
  // slot itself: the completion is posted, clears the slot first, and only then lets the op
  // go (a second emission meanwhile finds op.completed and does nothing).
  void cancel(send_op& op) {
    if (op.completed) {
      return;
    }
    op.completed = true;
    --open_sends;
    capacity.notify_all();
    count(asio::error::operation_aborted);
    send_handler handler(std::move(*op.handler));
    op.handler.reset();
    asio::post(
        executor, [self = shared_from_this(), op = &op, handler = std::move(handler)]() mutable {
          if (auto slot = asio::get_associated_cancellation_slot(handler); slot.is_connected()) {
            slot.clear();
          }
          op->slot_armed = false;
          self->maybe_free(*op);
          auto handler_executor = asio::get_associated_executor(handler, self->executor);
          asio::dispatch(handler_executor, [handler = std::move(handler)]() mutable {
            std::move(handler)(asio::error::operation_aborted, delivery_report{});
          });
        });
  }

  void maybe_free(send_op& op) {
    if (op.completed && !op.queued && !op.in_librdkafka && !op.slot_armed) {
      ops.release(op);
    }
  }

  std::size_t in_flight() const { return open_sends; }

  bool idle() const {
    return waiting.empty() && reports.empty() && (rk == nullptr || rd_kafka_outq_len(rk) == 0);
  }

  // Completes every send still open with `ec`, later (never from inside the caller).
  void abandon_all(error_code ec) {
    ops.for_each([&](send_op& op) {
      if (op.completed) {
        return;
      }
      auto handler = take_handler(op);
      count(ec);
      corvo::detail::complete_later(executor, std::move(handler), ec, delivery_report{});
    });
  }

  void destroy_handle() noexcept {
    if (!stopped) {
      stop_pump();
    }
    if (rk == nullptr) {
      return;
    }
    rd_kafka_purge(
        rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING);
    try {
      abandon_all(make_error_code(error::destroy));
    } catch (...) {
    }
    wakeup.reset();
    main_queue.reset();
    for (auto& [name, handle] : topics) {
      rd_kafka_topic_destroy(handle);
    }
    topics.clear();
    last_topic = nullptr;
    last_topic_name = {};
    rd_kafka_destroy(rk);
    rk = nullptr;
    // librdkafka dropped the reports it still held: nothing refers to the ops any more.
    waiting.clear();
    reports.clear();
    ops.for_each([&](send_op& op) {
      op.in_librdkafka = false;
      op.queued = false;
      maybe_free(op);
    });
  }
};

producer::producer(executor_type executor, const client_config& config, producer_options options)
    : impl_(std::make_shared<impl>(std::move(executor), options)) {
  auto native = detail::make_native_config(config, client_role::producer,
                                           {{"enable.idempotence", "true"}, {"acks", "all"}}, {});
  rd_kafka_conf_set_dr_msg_cb(native.conf.get(), &impl::on_delivery);
  rd_kafka_conf_set_error_cb(native.conf.get(), &impl::on_error);
  if (impl_->options.on_statistics) {
    rd_kafka_conf_set_stats_cb(native.conf.get(), &impl::on_statistics);
  }
  rd_kafka_conf_set_opaque(native.conf.get(), impl_.get());
  impl_->embedded = std::move(native.embedded);
  impl_->rk = detail::make_handle(RD_KAFKA_PRODUCER, native.conf);
  impl_->main_queue.reset(rd_kafka_queue_get_main(impl_->rk));
  impl_->wakeup = std::make_unique<detail::queue_wakeup>(impl_->executor);
  impl_->wakeup->attach(impl_->main_queue.get());
  impl_->start_pump();
}

producer::~producer() {
  if (impl_) {
    impl_->destroy_handle();
  }
}

producer::producer(producer&&) noexcept = default;

producer& producer::operator=(producer&& other) noexcept {
  if (this != &other) {
    if (impl_) {
      impl_->destroy_handle();
    }
    impl_ = std::move(other.impl_);
  }
  return *this;
}

void producer::start_send(impl* self, outgoing_message&& message, send_handler handler,
                          bool complete_inline) {
  self->start(std::move(message), std::move(handler), complete_inline);
}

const producer::executor_type& producer::executor_of(const impl* self) noexcept {
  return self->executor;
}

asio::awaitable<bool> producer::flush(std::chrono::steady_clock::duration timeout) {
  const auto self = impl_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  asio::steady_timer timer(self->executor);
  for (;;) {
    self->drain();
    if (self->idle()) {
      co_return true;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      co_return false;
    }
    timer.expires_after(std::min<std::chrono::steady_clock::duration>(
        deadline - now, std::chrono::milliseconds{5}));
    co_await timer.async_wait(asio::use_awaitable);
  }
}

asio::awaitable<void> producer::close(std::chrono::steady_clock::duration timeout) {
  const auto self = impl_;
  if (self->rk == nullptr || self->closing) {
    co_return;
  }
  self->closing = true;
  bool flushed = false;
  bool cancelled = false;
  try {
    flushed = co_await flush(timeout);
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::operation_aborted) {
      throw;
    }
    cancelled = true;
  }
  if (!flushed && self->rk != nullptr) {
    CORVO_LOG(warning, "kafka") << "producer " << rd_kafka_name(self->rk) << ": "
                                << self->in_flight() << " send(s) not delivered at close; "
                                << "purging them";
    rd_kafka_purge(self->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                                 RD_KAFKA_PURGE_F_NON_BLOCKING);
    for (auto* op : self->waiting) {
      op->queued = false;
      if (!op->completed) {
        self->complete_now(*op, make_error_code(error::purge_queue), {});
      } else {
        self->maybe_free(*op);
      }
    }
    self->waiting.clear();
    // Purged messages come back as delivery reports; serve them for a short while so the
    // senders learn their outcome (bounded: a purge never waits for a broker).
    if (!cancelled) {
      asio::steady_timer timer(self->executor);
      for (int i = 0; i < 200 && self->rk != nullptr && !self->idle(); ++i) {
        self->drain();
        timer.expires_after(std::chrono::milliseconds{5});
        error_code ignored;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      }
    }
    self->drain();
  }
  self->stop_pump();
  if (cancelled) {
    throw boost::system::system_error(asio::error::operation_aborted, "producer::close");
  }
}

asio::awaitable<void> producer::wait_below(std::size_t max_in_flight) {
  const auto self = impl_;
  while (self->open_sends >= max_in_flight && !self->stopped) {
    co_await self->capacity.wait_until(std::chrono::steady_clock::time_point::max());
  }
}

std::size_t producer::in_flight() const noexcept {
  return impl_->open_sends;
}

boost::system::error_code producer::fatal_error() const noexcept {
  return impl_ ? impl_->fatal : boost::system::error_code{};
}

bool producer::closed() const noexcept {
  return !impl_ || impl_->closing || impl_->stopped || impl_->rk == nullptr;
}

producer_stats producer::stats() const noexcept {
  producer_stats s = impl_->counters;
  s.in_flight = impl_->in_flight();
  s.waiting = impl_->waiting.size();
  return s;
}

producer::executor_type producer::get_executor() const noexcept {
  return impl_->executor;
}

rd_kafka_s* producer::native_handle() const noexcept {
  return impl_->rk;
}

}  // namespace corvo::kafka
