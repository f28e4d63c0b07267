#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/assert.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/trace.hpp>
#include <corvo/redis/error.hpp>
#include <corvo/stream/dead_letter.hpp>
#include <corvo/stream/typed_handlers.hpp>
#include <limits>
#include <stdexcept>

#include "consumer_impl.hpp"

namespace corvo::stream {

namespace {
constexpr std::string_view channel = "stream";

asio::awaitable<void> run_client(redis::client& c) {
  co_await c.run();
}

asio::awaitable<void> join_quietly(task_group& group) {
  try {
    co_await group.join();
  } catch (...) {
    if (!is_operation_aborted(std::current_exception())) {
      CORVO_LOG(error, channel) << "consumer: " << describe(std::current_exception());
    }
  }
}

}  // namespace

detail::held_ids::key detail::held_ids::key_of(std::string_view id) noexcept {
  // Two decimal numbers of at most 19 digits each (no overflow), joined by '-'.
  key k;
  std::size_t i = 0;
  const auto number = [&](std::uint64_t& out) {
    const std::size_t first = i;
    while (i < id.size() && i - first < 20 && id[i] >= '0' && id[i] <= '9') {
      out = out * 10 + static_cast<std::uint64_t>(id[i] - '0');
      ++i;
    }
    return i > first && i - first < 20;
  };
  if (number(k.ms) && i < id.size() && id[i] == '-' && (++i, number(k.seq)) && i == id.size()) {
    return k;
  }
  return key{std::numeric_limits<std::uint64_t>::max(), std::hash<std::string_view>{}(id)};
}

consumer::impl::impl(redis::client& r, consumer_options o)
    : redis(r), options(std::move(o)), name(options.consumer) {
  if (name.empty()) {
    name = default_consumer_name();
  }
}

std::size_t consumer::impl::free_slots() const noexcept {
  return held_count >= options.max_in_flight ? 0 : options.max_in_flight - held_count;
}

asio::awaitable<void> consumer::impl::wait_for_free_slot() {
  while (free_slots() == 0) {
    co_await slot_freed->wait();
  }
}

std::chrono::milliseconds consumer::impl::retry_delay(std::uint64_t deliveries) {
  const auto& p = options.retry_backoff;
  double ceiling = static_cast<double>(p.initial.count());
  for (std::uint64_t i = 1; i < deliveries && ceiling < static_cast<double>(p.max.count()); ++i) {
    ceiling *= p.multiplier;
  }
  const auto top = static_cast<std::int64_t>(std::min(ceiling, static_cast<double>(p.max.count())));
  if (!p.jitter || top <= 0) {
    return std::chrono::milliseconds(std::max<std::int64_t>(top, 0));
  }
  return std::chrono::milliseconds(std::uniform_int_distribution<std::int64_t>(0, top)(random));
}

// ---- reading -------------------------------------------------------------------------------

asio::awaitable<void> consumer::impl::reader(stream_state& s) {
  backoff errors(options.redis_retry);
  co_await ensure_group(s, false);
  bool history = true;  // own pending entries first
  std::string history_from = "0";
  for (;;) {
    co_await wait_for_free_slot();
    const std::size_t count = std::min(options.batch, free_slots());
    redis::request req;
    if (history) {
      req.push("XREADGROUP", "GROUP", options.group, name, "COUNT", count, "STREAMS", s.key,
               history_from);
    } else {
      req.push("XREADGROUP", "GROUP", options.group, name, "COUNT", count, "BLOCK",
               options.block.count(), "STREAMS", s.key, ">");
    }
    redis::response<detail::read_reply> resp;
    bool lost = false;
    try {
      co_await s.reader->exec(req, resp);
    } catch (...) {
      const auto e = std::current_exception();
      if (is_operation_aborted(e)) {
        throw;
      }
      lost = true;
      ++stats.redis_errors;
      CORVO_LOG(warning, channel) << "XREADGROUP on " << s.key << " failed: " << describe(e)
                                  << "; retrying";
    }
    if (lost) {
      co_await sleep_for(errors.next());
      continue;
    }
    auto& r = std::get<0>(resp);
    if (!r.has_value()) {
      if (detail::is_nogroup(r.error())) {
        co_await ensure_group(s, true);
        history = true;
        history_from = "0";
        continue;
      }
      ++stats.redis_errors;
      CORVO_LOG(warning, channel) << "XREADGROUP on " << s.key << ": " << r.error();
      co_await sleep_for(errors.next());
      continue;
    }
    errors.reset();
    if (!*r) {
      continue;  // BLOCK timed out
    }
    detail::reply_entries raw;
    for (auto& [key, entries] : **r) {
      if (key == s.key) {
        raw = std::move(entries);
      }
    }
    if (history) {
      if (raw.empty()) {
        history = false;
        continue;
      }
      history_from = raw.back().first;
    }
    auto entries = to_entries(s, std::move(raw));
    stats.read += entries.size();
    if (history) {
      co_await fill_deliveries(s, entries, true);
    }
    for (auto& e : entries) {
      if (!try_take(s, e)) {
        co_await take(s, std::move(e));
      }
    }
  }
}

std::vector<entry> consumer::impl::to_entries(const stream_state& s, detail::reply_entries&& in) {
  std::vector<entry> out;
  out.reserve(in.size());
  for (auto& [id, fields] : in) {
    entry e;
    e.stream = s.key;
    e.id = std::move(id);
    if (fields) {
      e.fields = std::move(*fields);
    } else {
      e.deliveries = 0;  // deleted while pending: marks it for clearing (see take())
    }
    out.push_back(std::move(e));
  }
  return out;
}

// ---- handling ------------------------------------------------------------------------------

// The common case without a coroutine of its own: an entry not ordered by key, queued for
// the worker pool. Returns false, leaving `e` as it was, when take() must decide.
bool consumer::impl::try_take(stream_state& s, entry& e) {
  if (e.deliveries == 0 || options.ordered_by_key || !s.held.insert(e.id)) {
    return false;  // take() decides (an id already held: it skips it)
  }
  ++held_count;
  enqueue(s, std::move(e));
  return true;
}

void consumer::impl::enqueue(stream_state& s, entry e) {
  ready.push_back(ready_entry{&s, std::move(e)});
  kick();
}

void consumer::impl::kick() {
  if (ready.empty() || wake_pending) {
    return;
  }
  if (work_ready->waiters() > 0) {
    wake_pending = true;
    work_ready->notify_one();
    return;
  }
  if (worker_count < options.max_in_flight) {
    // Counted before it exists: it starts on a later turn (see worker()).
    ++worker_count;
    wake_pending = true;
    auto w = worker();
    if (!workers->try_spawn(w)) {
      --worker_count;  // the group is stopping; `ready` is cleared after the drain
      wake_pending = false;
    }
  }
}

asio::awaitable<void> consumer::impl::worker() {
  struct counted {
    std::size_t& n;
    ~counted() { --n; }
  } in_pool{worker_count};
  // Start on a later turn, not inside kick(): a worker started inline would take the next
  // entry and start the next worker inline before running its own, nesting one frame per
  // waiting entry and running them last first.
  auto ex = co_await asio::this_coro::executor;
  co_await asio::post(ex, asio::use_awaitable);
  wake_pending = false;
  for (;;) {
    if (stopping) {
      const auto state = co_await asio::this_coro::cancellation_state;
      if (ready.empty() || state.cancelled() != asio::cancellation_type::none) {
        co_return;  // drained, or cut at the drain deadline (the rest stays pending)
      }
    }
    if (ready.empty()) {
      co_await work_ready->wait();  // throws when cancelled at the drain deadline
      wake_pending = false;
      continue;
    }
    auto next = std::move(ready.front());
    ready.pop_front();
    kick();  // more are waiting: another worker takes the next while this one runs
    co_await run_one(*next.s, std::move(next.e));
  }
}

asio::awaitable<void> consumer::impl::take(stream_state& s, entry e) {
  if (e.deliveries == 0) {
    // Deleted or trimmed while pending: nothing to run, clear it from the group.
    ++stats.deleted_cleared;
    if (!s.held.contains(e.id)) {
      ack(s, std::move(e.id));
    }
    co_return;
  }
  if (!s.held.insert(e.id)) {
    co_return;  // already running here (reclaimed while a slow run goes on)
  }
  ++held_count;
  if (options.ordered_by_key) {
    if (const auto key = e.field(event_field::key)) {
      if (const auto it = s.key_queues.find(*key); it != s.key_queues.end()) {
        it->second.push_back(std::move(e));
        co_return;
      }
      std::string k(*key);
      s.key_queues.emplace(k, std::deque<entry>{});
      co_await workers->spawn(run_chain(s, std::move(k), std::move(e)));
      co_return;
    }
  }
  enqueue(s, std::move(e));
}

asio::awaitable<void> consumer::impl::run_one(stream_state& s, entry e) {
  // The first attempt runs here, without a coroutine frame of its own: this is the hot path.
  // A failure, or an entry already over max_deliveries, continues in process().
  bool succeeded = false;
  if (e.deliveries <= options.max_deliveries) {
    if (observer) {
      observer(e);
    }
    std::exception_ptr error;
    try {
      asio::awaitable<void> work = handle(e);
      co_await std::move(work);
    } catch (...) {
      error = std::current_exception();
    }
    if (!error) {
      ++stats.handled;
      succeeded = true;
    } else {
      succeeded = co_await process(s, e, error);
    }
  } else {
    succeeded = co_await process(s, e, nullptr);
  }
  finish(s, e, succeeded);
}

asio::awaitable<void> consumer::impl::run_chain(stream_state& s, std::string key, entry first) {
  entry e = std::move(first);
  for (;;) {
    const bool succeeded = co_await process(s, e, nullptr);
    finish(s, e, succeeded);
    const auto it = s.key_queues.find(key);
    if (it == s.key_queues.end() || it->second.empty()) {
      if (it != s.key_queues.end()) {
        s.key_queues.erase(it);
      }
      co_return;
    }
    e = std::move(it->second.front());
    it->second.pop_front();
    if (stopping) {
      // Not started: leave it (and the rest of this key) pending, in order.
      finish(s, e, false);
      while (!it->second.empty()) {
        finish(s, it->second.front(), false);
        it->second.pop_front();
      }
      s.key_queues.erase(it);
      co_return;
    }
  }
}

void consumer::impl::finish(stream_state& s, entry& e, bool acknowledge) {
  s.held.erase(e.id);
  if (acknowledge) {
    ack(s, std::move(e.id));
  }
  --held_count;
  slot_freed->notify_all();
}

void consumer::impl::ack(stream_state& s, std::string id) {
  s.acks.push_back(std::move(id));
  if (s.acks.size() == 1) {
    s.acks_pending->notify_all();
  }
}

asio::awaitable<bool> consumer::impl::retry_sleep(std::chrono::milliseconds delay) {
  if (stopping) {
    co_return false;
  }
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex, delay);
  retry_timers.insert(&timer);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  retry_timers.erase(&timer);
  co_return !stopping;
}

asio::awaitable<bool> consumer::impl::process(stream_state& s, entry& e,
                                              std::exception_ptr failure) {
  for (;;) {
    if (!failure) {
      if (e.deliveries > options.max_deliveries) {
        const std::string reason = "delivered " + std::to_string(e.deliveries) +
                                   " times without success (max_deliveries " +
                                   std::to_string(options.max_deliveries) + ")";
        co_await dead_letter(s, e, reason);
        co_return false;
      }
      if (observer) {
        observer(e);
      }
      try {
        asio::awaitable<void> work = handle(e);
        co_await std::move(work);
      } catch (...) {
        failure = std::current_exception();
      }
      if (!failure) {
        ++stats.handled;
        co_return true;
      }
    }
    std::string reason;
    bool permanent = false;
    try {
      std::rethrow_exception(std::exchange(failure, nullptr));
    } catch (const permanent_error& x) {
      permanent = true;
      reason = std::string(x.kind()) + ": " + x.what();
    } catch (...) {
      const auto error = std::current_exception();
      if (stopping && is_operation_aborted(error)) {
        co_return false;  // cut at the drain deadline: stays pending
      }
      reason = describe(error);
    }
    ++stats.failed;
    if (permanent || e.deliveries >= options.max_deliveries) {
      if (!permanent) {
        reason = "failed on delivery " + std::to_string(e.deliveries) + " of " +
                 std::to_string(options.max_deliveries) + ": " + reason;
      }
      co_await dead_letter(s, e, reason);
      co_return false;
    }
    CORVO_LOG_TRACED(debug, channel, e.traceparent())
        << "entry " << e.id << " of " << s.key << " failed (delivery " << e.deliveries
        << "): " << reason << "; retrying later";
    const auto delay = retry_delay(e.deliveries);
    if (!co_await retry_sleep(delay)) {
      co_return false;  // stopping: stays pending
    }
    if (!co_await reown(s, e, delay)) {
      co_return false;  // gone, or taken over by another consumer meanwhile
    }
    ++stats.retried;
  }
}

// ---- acknowledging -------------------------------------------------------------------------

// Acknowledgements never wait for a connection (fail_if_not_connected): while Redis is
// unreachable they are retried with backoff, and a stopping consumer whose connection is
// down, or whose cluster answers CLUSTERDOWN (cluster_state:fail), gives up at once instead
// of waiting out its drain for a server that cannot take them (the entries stay pending and
// run again after the restart, as after any failure).
asio::awaitable<void> consumer::impl::acker(stream_state& s) {
  backoff errors(options.redis_retry);
  redis::request::config unwaiting;
  unwaiting.fail_if_not_connected = true;
  for (;;) {
    if (s.acks.empty()) {
      if (finishing) {
        co_return;
      }
      co_await s.acks_pending->wait();
      continue;
    }
    std::vector<std::string> batch;
    if (s.acks.size() <= options.ack_batch) {
      batch.swap(s.acks);
    } else {
      batch.assign(std::make_move_iterator(s.acks.begin()),
                   std::make_move_iterator(s.acks.begin() + options.ack_batch));
      s.acks.erase(s.acks.begin(), s.acks.begin() + options.ack_batch);
    }
    redis::request req(unwaiting);
    req.push("XACK", s.key, options.group, batch);
    redis::response<std::uint64_t> resp;
    std::string problem;
    bool unreachable = false;
    try {
      co_await redis.exec(req, resp);
      auto& r = std::get<0>(resp);
      if (r.has_value()) {
        stats.acked += batch.size();
        errors.reset();
        continue;
      }
      if (detail::is_nogroup(r.error())) {
        CORVO_LOG(warning, channel) << "group " << options.group << " of " << s.key << " is gone; "
                                    << batch.size() << " acknowledgement(s) dropped";
        continue;
      }
      problem = r.error().message;
    } catch (...) {
      const auto e = std::current_exception();
      if (is_operation_aborted(e)) {
        s.acks.insert(s.acks.begin(), std::make_move_iterator(batch.begin()),
                      std::make_move_iterator(batch.end()));
        throw;  // cut at the stop deadline: run() reports what is left
      }
      unreachable = redis::is_unreachable(e);
      problem = describe(e);
    }
    ++stats.redis_errors;
    s.acks.insert(s.acks.begin(), std::make_move_iterator(batch.begin()),
                  std::make_move_iterator(batch.end()));
    if (finishing && unreachable) {
      co_return;  // stopping with Redis unreachable: run() reports what is left
    }
    CORVO_LOG(warning, channel) << "XACK on " << s.key << " failed: " << problem << "; retrying";
    if (finishing) {
      co_await sleep_for(options.redis_retry.initial);
    } else if (stopping) {
      co_await s.acks_pending->wait();  // retried once the handlers have drained
    } else {
      co_await retry_sleep(errors.next());  // cut short when the consumer starts stopping
    }
  }
}

// ---- life ----------------------------------------------------------------------------------

asio::awaitable<void> consumer::impl::run(handler h) {
  if (running) {
    throw std::logic_error("stream::consumer::run() is already running");
  }
  if (abandoned) {
    // The consumer object was destroyed before this run began.
    throw boost::system::system_error(asio::error::operation_aborted);
  }
  auto ex = co_await asio::this_coro::executor;
  handle = std::move(h);
  running = true;
  stopping = false;
  finishing = false;
  held_count = 0;
  ready.clear();
  worker_count = 0;
  wake_pending = false;
  work_ready = std::make_unique<notifier>(ex);
  workers.emplace(
      ex, task_group_options{.max_in_flight = 0, .on_failure = failure_policy::collect_errors});
  slot_freed = std::make_unique<notifier>(ex);
  streams.clear();
  for (const auto& key : options.streams) {
    auto s = std::make_unique<stream_state>();
    s->key = key;
    s->dead_letters = dead_letter_key(key);
    s->reader = redis.dedicated();
    s->acks_pending = std::make_unique<notifier>(ex);
    streams.push_back(std::move(s));
  }

  task_group connections(ex);
  task_group ackers(ex);
  task_group loops(ex);
  std::exception_ptr ended_by;
  try {
    for (auto& s : streams) {
      co_await connections.spawn(run_client(*s->reader));
      co_await ackers.spawn(acker(*s));
    }
    for (auto& s : streams) {
      co_await loops.spawn(reader(*s));
      co_await loops.spawn(claimer(*s));
    }
    loops_now = &loops;
    if (abandoned) {
      loops.cancel();
    }
    co_await loops.join();
  } catch (...) {
    ended_by = std::current_exception();
  }
  loops_now = nullptr;
  // Stopping: the readers and claimers have ended (join waits for them even when
  // cancelled). Let the handlers in flight finish, then acknowledge them.
  co_await asio::this_coro::reset_cancellation_state();
  stopping = true;
  for (auto* t : retry_timers) {
    t->cancel();
  }
  work_ready->notify_all();  // idle workers end; busy ones drain `ready` first
  if (!co_await workers->join_for(options.drain_timeout)) {
    CORVO_LOG(warning, channel) << held_count
                                << " entr(ies) still being handled after the drain timeout; "
                                   "cancelling them (they stay pending)";
    workers->cancel();
    co_await join_quietly(*workers);
  } else {
    co_await join_quietly(*workers);  // consumes recorded failures
  }
  for (auto& [s, e] : ready) {
    finish(*s, e, false);  // never started: stays pending
  }
  ready.clear();
  finishing = true;
  for (auto& s : streams) {
    s->acks_pending->notify_all();
  }
  if (!co_await ackers.join_for(options.drain_timeout)) {
    ackers.cancel();
  }
  co_await join_quietly(ackers);
  for (auto& s : streams) {
    if (!s->acks.empty()) {
      CORVO_LOG(error, channel) << s->acks.size() << " finished entr(ies) of " << s->key
                                << " could not be acknowledged before stopping; they stay "
                                   "pending and run again";
    }
    s->reader->cancel();
  }
  co_await join_quietly(connections);
  running = false;
  if (ended_by) {
    std::rethrow_exception(ended_by);
  }
  throw boost::system::system_error(asio::error::operation_aborted);
}

// ---- public --------------------------------------------------------------------------------

void consumer::impl::abandon() {
  abandoned = true;  // never reset: the consumer object is gone, no run can follow
  if (running && loops_now != nullptr) {
    loops_now->cancel();  // then the run stops as after a cancellation
  }
}

consumer::consumer(redis::client& redis, consumer_options options)
    : impl_(std::make_shared<impl>(redis, std::move(options))) {
  const auto& o = impl_->options;
  if (o.group.empty() || o.streams.empty()) {
    throw std::invalid_argument("stream::consumer: a group and at least one stream are needed");
  }
  if (o.batch == 0 || o.max_in_flight == 0 || o.claim_batch == 0 || o.ack_batch == 0 ||
      o.max_deliveries == 0) {
    throw std::invalid_argument(
        "stream::consumer: batch, max_in_flight, claim_batch, ack_batch and max_deliveries "
        "must be at least 1");
  }
}

consumer::~consumer() {
  impl_->abandon();
}

asio::awaitable<void> consumer::run(handler h) {
  // The state is taken now, when run() is called, not when the coroutine first resumes:
  // it outlives this object when it is destroyed before or during the run.
  return [](std::shared_ptr<impl> state, handler h) -> asio::awaitable<void> {
    co_await state->run(std::move(h));
  }(impl_, std::move(h));
}

void consumer::on_start(start_observer observer) {
  impl_->observer = std::move(observer);
}

const std::string& consumer::name() const noexcept {
  return impl_->name;
}

const consumer_options& consumer::options() const noexcept {
  return impl_->options;
}

const consumer_stats& consumer::stats() const noexcept {
  return impl_->stats;
}

}  // namespace corvo::stream
