#include <algorithm>
#include <atomic>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/detail/complete_later.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <corvo/redis/error.hpp>
#include <list>

namespace corvo::pubsub {

namespace {

using clock_type = std::chrono::steady_clock;
using boost::system::error_code;
using boost::system::system_error;

enum class kind { channel, pattern, shard };

const char* command_of(kind k, bool add) {
  switch (k) {
    case kind::channel:
      return add ? "SUBSCRIBE" : "UNSUBSCRIBE";
    case kind::pattern:
      return add ? "PSUBSCRIBE" : "PUNSUBSCRIBE";
    case kind::shard:
      break;
  }
  return add ? "SSUBSCRIBE" : "SUNSUBSCRIBE";
}

// Spreads the subscribers of one process over the masters of a cluster.
std::uint16_t next_pin_slot() {
  static std::atomic<std::uint32_t> counter{0};
  return static_cast<std::uint16_t>((counter.fetch_add(1) * 5'471u + 1'234u) % redis::slot_count);
}

// A receive() waiting for the buffer to fill: its completion handler, resumed when a message
// arrives or the subscriber stops, or completed with operation_aborted when its
// cancellation slot fires.
using wake_handler = asio::any_completion_handler<void(error_code)>;
struct waiter {
  wake_handler handler;
  bool same_executor = false;  // the waiter runs on the subscriber's executor
  // Taken from the concrete handler at the start of the wait (not asked of the erased one).
  asio::cancellation_slot slot;
};
using waiter_list = std::list<waiter>;

}  // namespace

subscriber_options subscriber_options::from(const corvo::config& cfg, std::string_view section) {
  const corvo::config s = cfg.section(section);
  subscriber_options out;
  out.buffer.max_messages = s.get_or<std::size_t>("buffer.max_messages", out.buffer.max_messages);
  out.buffer.max_bytes = s.get_or<std::size_t>("buffer.max_bytes", out.buffer.max_bytes);
  if (out.buffer.max_messages == 0) {
    throw corvo::config_error(std::string(section) + ".buffer.max_messages", "must be at least 1");
  }
  const std::string policy = s.get_or<std::string>("overflow", to_string(out.overflow));
  try {
    out.overflow = parse_overflow_policy(policy);
  } catch (const std::invalid_argument& e) {
    throw corvo::config_error(std::string(section) + ".overflow", e.what());
  }
  out.topology_check_interval =
      s.get_or<std::chrono::milliseconds>("topology_check_interval", out.topology_check_interval);
  if (out.topology_check_interval.count() <= 0) {
    throw corvo::config_error(std::string(section) + ".topology_check_interval",
                              "must be positive");
  }
  cfg.reject_unknown_keys(section);
  return out;
}

struct subscriber::impl : std::enable_shared_from_this<impl> {
  impl(executor_type ex, redis::client_config redis, subscriber_options o)
      : executor(ex),
        options(o),
        client(std::make_unique<redis::client>(ex, std::move(redis))),
        buffer(o.buffer, o.overflow),
        pin_slot(next_pin_slot()) {
    // Pushes come straight from the connection's reader: no channel and no coroutine of ours
    // between the socket and the buffer. The reader runs only inside client->run(), which
    // runs only inside run(), which holds this impl.
    client->set_push_sink([this](redis::generic_response&& push) { on_push(std::move(push)); });
  }

  executor_type executor;
  subscriber_options options;
  std::unique_ptr<redis::client> client;
  message_buffer buffer;

  // Desired sets, and the names the server has confirmed at least once since they were
  // last desired (a confirmation of one of those is a resubscription).
  std::set<std::string> desired[3];
  std::set<std::string> confirmed[3];

  subscriber_stats counters;
  waiter_list waiters;
  bool stopping = false;
  error_code failure;

  // Cluster: channels and patterns live on the master of `pin_slot`, at `pinned`.
  std::uint16_t pin_slot;
  std::string pinned;
  bool restore_pending = false;

  static std::size_t index(kind k) { return static_cast<std::size_t>(k); }

  // Resumes every waiting receive(). For a message (`at_once`) a waiter on the subscriber's
  // executor (where the reader runs) is resumed right here, inside the reader: one scheduler
  // hop less per delivery than a posted wake-up. A stop posts the wake-ups, so cancel() and the
  // destructor never run a caller's coroutine inside them. The list is taken first: a resumed
  // receive() may wait again before this returns.
  void notify(bool at_once = false) {
    if (waiters.empty()) {
      return;
    }
    waiter_list ready;
    ready.swap(waiters);
    // Every cancellation slot is cleared before any waiter runs: a resumed one may cancel
    // another, whose slot handler would otherwise erase it from the wrong list.
    for (auto& w : ready) {
      if (w.slot.is_connected()) {
        w.slot.clear();
      }
    }
    for (auto& w : ready) {
      if (at_once && w.same_executor) {
        std::move(w.handler)(error_code{});
      } else {
        corvo::detail::complete_later(executor, std::move(w.handler), error_code{});
      }
    }
  }

  // Named initiation (GCC 12: no capturing lambda temporaries in a co_await expression).
  struct wait_initiation {
    impl* self;
    template <class Handler>
    void operator()(Handler&& handler) const {
      auto slot = asio::get_associated_cancellation_slot(handler);
      // Decided on the concrete handler type: cheap, unlike asking the erased handler.
      const bool same_executor =
          asio::get_associated_executor(handler, self->executor) == self->executor;
      self->waiters.push_back(
          waiter{wake_handler(std::forward<Handler>(handler)), same_executor, slot});
      if (slot.is_connected()) {
        auto it = std::prev(self->waiters.end());
        slot.assign([s = self, it](asio::cancellation_type type) {
          if (type == asio::cancellation_type::none) {
            return;
          }
          wake_handler h = std::move(it->handler);
          s->waiters.erase(it);
          corvo::detail::complete_later(s->executor, std::move(h),
                                        error_code(asio::error::operation_aborted));
        });
      }
    }
  };

  template <class CompletionToken>
  auto async_wait_for_message(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(error_code)>(wait_initiation{this}, token);
  }

  void stop() {
    if (!stopping) {
      stopping = true;
      client->cancel();
    }
    notify();
  }

  // ---- reading ---------------------------------------------------------------------------

  void on_push(redis::generic_response&& push) {
    if (auto m = message_from_push(std::move(push))) {
      m->received_at = clock_type::now();
      ++counters.received;
      if (buffer.push(std::move(*m)) == message_buffer::push_result::overflow) {
        CORVO_LOG(warning, "pubsub") << "subscriber buffer full (" << buffer.size()
                                     << " messages); overflow policy disconnect: stopping";
        failure = error::buffer_overflow;
        stop();
        return;
      }
      notify(true);
      return;
    }
    if (push.size() < 3 || push[0].depth != 0) {
      return;
    }
    const std::string& what = push[1].value;
    const std::string& name = push[2].value;
    const auto confirmation = [&](kind k, bool subscribed) {
      auto& done = confirmed[index(k)];
      if (!desired[index(k)].contains(name)) {
        done.erase(name);
      } else if (subscribed && !done.insert(name).second) {
        ++counters.resubscriptions;
      }
    };
    if (what == "subscribe") {
      confirmation(kind::channel, true);
    } else if (what == "psubscribe") {
      confirmation(kind::pattern, true);
    } else if (what == "ssubscribe") {
      confirmation(kind::shard, true);
    } else if (what == "unsubscribe") {
      confirmation(kind::channel, false);
    } else if (what == "punsubscribe") {
      confirmation(kind::pattern, false);
    } else if (what == "sunsubscribe") {
      confirmation(kind::shard, false);
    }
  }

  // The client's run() ends when stop() cancels it; a subscriber stopped by the overflow
  // policy `disconnect` then fails run() (and so cancels the topology watcher).
  static asio::awaitable<void> run_client(std::shared_ptr<impl> self) {
    co_await self->client->run();
    if (self->failure) {
      throw system_error(self->failure);
    }
  }

  // ---- cluster: channels and patterns pinned to one master --------------------------------

  redis::route_hint pin_hint() const { return redis::route_hint::for_slot(pin_slot); }

  void update_pinned() {
    const auto map = client->cluster()->topology();
    if (const auto* owner = map.master_of(pin_slot)) {
      pinned = owner->address();
    }
  }

  // After a slot migration the pinned master may no longer own `pin_slot`; the commands
  // must still reach it (its connection holds the subscriptions): pin another of its slots.
  void repin(const redis::slot_map& map) {
    const auto* owner = map.master_of(pin_slot);
    if (owner == nullptr || owner->address() == pinned) {
      return;
    }
    for (std::uint32_t slot = 0; slot < redis::slot_count; ++slot) {
      const auto* o = map.master_of(static_cast<std::uint16_t>(slot));
      if (o != nullptr && o->address() == pinned) {
        pin_slot = static_cast<std::uint16_t>(slot);
        return;
      }
    }
  }

  asio::awaitable<void> restore_plain() {
    redis::request::config cfg;
    cfg.idempotent = true;
    redis::request req(cfg);
    if (!desired[index(kind::channel)].empty()) {
      req.push("SUBSCRIBE", desired[index(kind::channel)]);
    }
    if (!desired[index(kind::pattern)].empty()) {
      req.push("PSUBSCRIBE", desired[index(kind::pattern)]);
    }
    if (req.size() == 0) {
      co_return;
    }
    CORVO_LOG(info, "pubsub") << "master " << pinned
                              << " left; subscribing channels and patterns again";
    co_await client->exec(req, redis::ignore, pin_hint());
    update_pinned();
  }

  static asio::awaitable<void> watch_topology(std::shared_ptr<impl> self) {
    auto* cluster = self->client->cluster();
    std::uint64_t seen = cluster->stats().refreshes;
    while (!self->stopping) {
      co_await corvo::sleep_for(self->options.topology_check_interval);
      const std::uint64_t refreshes = cluster->stats().refreshes;
      if (self->stopping || (refreshes == seen && !self->restore_pending)) {
        continue;
      }
      seen = refreshes;
      if (self->pinned.empty() || (self->desired[index(kind::channel)].empty() &&
                                   self->desired[index(kind::pattern)].empty())) {
        continue;
      }
      if (!self->restore_pending) {
        const auto map = cluster->topology();
        if (map.is_master(self->pinned)) {
          self->repin(map);
          continue;
        }
        self->restore_pending = true;
      }
      try {
        co_await self->restore_plain();
        self->restore_pending = false;
      } catch (const system_error& e) {
        if (self->stopping) {
          break;
        }
        CORVO_LOG(warning, "pubsub") << "restoring channel subscriptions: " << e.what();
      }
    }
  }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    corvo::task_group group(executor);
    auto client_task = run_client(self);
    co_await group.spawn(std::move(client_task));
    if (client->is_cluster()) {
      auto watcher = watch_topology(self);
      co_await group.spawn(std::move(watcher));
    }
    std::exception_ptr failed;
    try {
      co_await group.join();
    } catch (...) {
      failed = std::current_exception();
    }
    stop();
    if (failed) {
      std::rethrow_exception(failed);
    }
  }

  // ---- subscription changes ----------------------------------------------------------------

  asio::awaitable<void> change(kind k, bool add, std::vector<std::string> names) {
    auto self = shared_from_this();
    auto& wanted = desired[index(k)];
    std::vector<std::string> todo;
    if (add) {
      for (auto& name : names) {
        if (wanted.insert(name).second) {
          todo.push_back(std::move(name));
        }
      }
    } else {
      if (names.empty()) {
        names.assign(wanted.begin(), wanted.end());
      }
      for (auto& name : names) {
        if (wanted.erase(name) != 0) {
          confirmed[index(k)].erase(name);
          todo.push_back(std::move(name));
        }
      }
    }
    if (todo.empty()) {
      co_return;
    }
    error_code failed;
    std::string what;
    try {
      if (stopping) {
        throw system_error(redis::error::connection_closed, "pubsub subscriber");
      }
      if (k == kind::shard && client->is_cluster()) {
        if (add) {
          co_await client->cluster()->ssubscribe(todo);
        } else {
          co_await client->cluster()->sunsubscribe(todo);
        }
      } else {
        redis::request::config cfg;
        cfg.idempotent = true;
        redis::request req(cfg);
        req.push(command_of(k, add), todo);
        if (client->is_cluster()) {
          co_await client->exec(req, redis::ignore, pin_hint());
          update_pinned();
        } else {
          co_await client->exec(req);
        }
      }
    } catch (const system_error& e) {
      failed = e.code();
      what = e.what();
    }
    if (!failed) {
      co_return;
    }
    if (add) {
      for (const auto& name : todo) {
        wanted.erase(name);
        confirmed[index(k)].erase(name);
      }
      if (failed == redis::error::subscription_refused) {
        ++counters.refused;
        // A cluster subscribes shard channels slot by slot: undo the slots that succeeded,
        // so the call is all or nothing like one SUBSCRIBE.
        if (k == kind::shard && client->is_cluster() && !stopping) {
          try {
            co_await client->cluster()->sunsubscribe(todo);
          } catch (const system_error& e) {
            CORVO_LOG(warning, "pubsub") << "undoing a refused SSUBSCRIBE: " << e.what();
          }
        }
      }
    }
    throw system_error(failed, what);
  }

  // ---- receiving ---------------------------------------------------------------------------

  // One coroutine frame per receive (subscriber::receive is not a coroutine itself).
  static asio::awaitable<message> receive(std::shared_ptr<impl> self) {
    for (;;) {
      if (auto m = self->buffer.pop()) {
        ++self->counters.delivered;
        co_return std::move(*m);
      }
      if (self->failure) {
        throw system_error(self->failure);
      }
      if (self->stopping) {
        throw system_error(error::subscriber_stopped);
      }
      co_await self->async_wait_for_message(asio::as_tuple(asio::use_awaitable));
      const auto state = co_await asio::this_coro::cancellation_state;
      if (state.cancelled() != asio::cancellation_type::none) {
        throw system_error(asio::error::operation_aborted);
      }
    }
  }

  subscriber_stats stats() const {
    subscriber_stats out = counters;
    out.dropped = buffer.dropped();
    out.buffered = buffer.size();
    out.buffered_bytes = buffer.bytes();
    if (const auto oldest = buffer.oldest_received_at()) {
      out.oldest_age = clock_type::now() - *oldest;
    }
    return out;
  }
};

subscriber::subscriber(executor_type executor, redis::client_config redis,
                       subscriber_options options)
    : impl_(std::make_shared<impl>(std::move(executor), std::move(redis), options)) {}

subscriber::~subscriber() {
  impl_->stop();
}

subscriber::executor_type subscriber::get_executor() const noexcept {
  return impl_->executor;
}

asio::awaitable<void> subscriber::run() {
  auto self = impl_;
  co_await self->run();
}

void subscriber::cancel() {
  impl_->stop();
}

asio::awaitable<void> subscriber::subscribe(std::vector<std::string> channels) {
  auto self = impl_;
  co_await self->change(kind::channel, true, std::move(channels));
}

asio::awaitable<void> subscriber::psubscribe(std::vector<std::string> patterns) {
  auto self = impl_;
  co_await self->change(kind::pattern, true, std::move(patterns));
}

asio::awaitable<void> subscriber::ssubscribe(std::vector<std::string> shard_channels) {
  auto self = impl_;
  co_await self->change(kind::shard, true, std::move(shard_channels));
}

asio::awaitable<void> subscriber::unsubscribe(std::vector<std::string> channels) {
  auto self = impl_;
  co_await self->change(kind::channel, false, std::move(channels));
}

asio::awaitable<void> subscriber::punsubscribe(std::vector<std::string> patterns) {
  auto self = impl_;
  co_await self->change(kind::pattern, false, std::move(patterns));
}

asio::awaitable<void> subscriber::sunsubscribe(std::vector<std::string> shard_channels) {
  auto self = impl_;
  co_await self->change(kind::shard, false, std::move(shard_channels));
}

asio::awaitable<message> subscriber::receive() {
  return impl::receive(impl_);
}

subscriber_stats subscriber::stats() const {
  return impl_->stats();
}

const std::set<std::string>& subscriber::channels() const noexcept {
  return impl_->desired[0];
}

const std::set<std::string>& subscriber::patterns() const noexcept {
  return impl_->desired[1];
}

const std::set<std::string>& subscriber::shard_channels() const noexcept {
  return impl_->desired[2];
}

redis::client& subscriber::client() noexcept {
  return *impl_->client;
}

std::uint16_t subscriber::pin_slot() const noexcept {
  return impl_->pin_slot;
}

}  // namespace corvo::pubsub
