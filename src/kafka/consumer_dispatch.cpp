#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/core/backoff.hpp>
#include <optional>

#include "consumer_impl.hpp"

namespace corvo::kafka {

namespace {

using clock = std::chrono::steady_clock;
using boost::system::error_code;

// Messages a busy partition handles before it gives its slot to a waiting one.
constexpr std::size_t fair_share = 64;

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

void consumer::impl::schedule(const partition_ptr& ps) {
  if (ps->worker_running || ps->revoking || stopping) {
    return;
  }
  if (slots.want(ps)) {
    start_worker(ps);
  }
}

void consumer::impl::start_workers(std::vector<partition_ptr> next) {
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

void consumer::impl::start_worker(const partition_ptr& ps) {
  ps->worker_running = true;
  asio::co_spawn(
      executor, partition_worker(shared_from_this(), ps),
      asio::bind_cancellation_slot(ps->cancel.slot(), worker_done{shared_from_this(), ps}));
}

void consumer::impl::on_worker_done(const partition_ptr& ps, const std::exception_ptr& e) {
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

asio::awaitable<void> consumer::impl::partition_worker(std::shared_ptr<impl> self,
                                                       partition_ptr ps) {
  if (self->options.max_in_flight_per_partition > 1) {
    co_await pipelined_worker(self, ps);
    co_return;
  }
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

asio::awaitable<void> consumer::impl::pipelined_worker(std::shared_ptr<impl> self,
                                                       partition_ptr ps) {
  const std::size_t window = self->options.max_in_flight_per_partition;
  std::size_t started = 0;
  bool cancelled = false;
  try {
    while (!ps->revoking && !self->stopping) {
      if (ps->queue.size() <= self->options.max_buffered_per_partition / 2) {
        self->refill(*ps);
      }
      const bool yield = started >= fair_share && self->slots.should_yield();
      if (ps->queue.empty() || yield || ps->handlers_running >= window) {
        if (ps->handlers_running == 0) {
          break;  // nothing to do, or yielding (on_worker_done puts this partition in line)
        }
        co_await ps->handler_done.wait_until(clock::time_point::max());
        continue;
      }
      fetched_message next_message = std::move(ps->queue.front());
      ps->queue.pop_front();
      const auto ticket = next_message.ticket;
      const auto signal = ps->handler_cancels.emplace(ps->handler_cancels.end());
      ++ps->handlers_running;
      ++started;
      // The handler runs at once, up to its first suspension (co_spawn launches it on this
      // thread), so handlers start in offset order.
      asio::co_spawn(
          self->executor, process_owned(self, ps, std::move(next_message)),
          asio::bind_cancellation_slot(signal->slot(), pipelined_done{self, ps, signal, ticket}));
    }
    // Revoking or stopping: the running handlers finish (revocation and shutdown cancel
    // this worker when they take too long).
    while (ps->handlers_running > 0) {
      co_await ps->handler_done.wait_until(clock::time_point::max());
    }
  } catch (const boost::system::system_error&) {
    cancelled = true;  // (co_await is not allowed in a handler)
  }
  if (cancelled && ps->handlers_running > 0) {
    for (auto& signal : ps->handler_cancels) {
      signal.emit(asio::cancellation_type::terminal);
    }
    co_await asio::this_coro::reset_cancellation_state();
    while (ps->handlers_running > 0) {
      co_await ps->handler_done.wait_until(clock::time_point::max());
    }
  }
}

asio::awaitable<bool> consumer::impl::process_owned(std::shared_ptr<impl> self, partition_ptr ps,
                                                    fetched_message fetched) {
  co_return co_await process(self, ps, fetched.msg);
}

void consumer::impl::pipelined_done::operator()(std::exception_ptr e, bool finished) const {
  --ps->handlers_running;
  ps->handler_cancels.erase(signal);
  if (e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      CORVO_LOG(error, "kafka") << "consumer " << self->name << ": handler on " << ps->topic << "["
                                << ps->partition << "] failed: " << ex.what();
    } catch (...) {
    }
  } else if (finished) {
    // (A message handed out before a rewind finishes nothing: its ticket is gone.)
    if (const auto next = ps->tracker.finish(ticket); next && !ps->lost) {
      self->store_offset(*ps, *next);
    }
  }
  ps->handler_done.notify_all();
}

asio::awaitable<bool> consumer::impl::process(std::shared_ptr<impl> self, partition_ptr ps,
                                              const message& m) {
  // Made at the first failure: seeding a backoff reads std::random_device, which cost more
  // than a light handler (11% of a consumer's CPU when made for every message).
  std::optional<backoff> delays;
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
    if (!delays) {
      delays.emplace(self->options.retry_backoff);
    }
    const auto delay = delays->next();
    CORVO_LOG(warning, "kafka") << "consumer " << self->name << ": handler failed on " << m.topic()
                                << "[" << m.partition() << "]@" << m.offset() << " (attempt "
                                << attempt << "): " << reason << "; retrying in " << delay.count()
                                << " ms";
    // A revocation or stop cancels this wait (see cancel_backoffs).
    ++ps->backing_off;
    const bool slept = co_await pause_for(delay);
    --ps->backing_off;
    if (!slept || ps->revoking || self->stopping) {
      co_return false;
    }
  }
}

asio::awaitable<bool> consumer::impl::dead_letter(std::shared_ptr<impl> self, partition_ptr ps,
                                                  const message& m, std::string reason,
                                                  std::string kind, unsigned attempts) {
  const std::string topic = expand_topic(self->options.dead_letter_topic, m.topic());
  std::vector<header> headers;
  for (const auto& h : m.headers()) {
    headers.push_back({std::string(h.name),
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
    ++ps->dead_lettering;
    try {
      co_await self->dead_letters->async_send(
          std::move(copy),
          asio::bind_cancellation_slot(asio::cancellation_slot(),
                                       asio::redirect_error(asio::use_awaitable, ec)));
    } catch (const boost::system::system_error& e) {
      ec = e.code();
    }
    --ps->dead_lettering;
    if (!ec) {
      ++self->counters.dead_lettered;
      CORVO_LOG(warning, "kafka") << "consumer " << self->name << ": dead-lettered " << m.topic()
                                  << "[" << m.partition() << "]@" << m.offset() << " to " << topic
                                  << " (" << kind << "): " << reason;
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

}  // namespace corvo::kafka
