#include "consumer_engine.hpp"

#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/redis/error.hpp>
#include <unordered_map>

#include "scripts.hpp"

namespace corvo::queue::detail {
namespace {

using boost::system::error_code;
using steady = std::chrono::steady_clock;

// Pause between attempts while Redis fails.
const backoff_policy redis_retry{std::chrono::milliseconds{50}, std::chrono::milliseconds{2000}};

std::unique_ptr<asio::steady_timer> notifier(const asio::any_io_executor& ex) {
  auto t = std::make_unique<asio::steady_timer>(ex);
  t->expires_at(steady::time_point::max());
  return t;
}

asio::awaitable<void> wait(asio::steady_timer& t) {
  error_code ignored;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

asio::awaitable<void> run_client(redis::client& client) {
  co_await client.run();
}

asio::awaitable<void> join_quietly(task_group& group) {
  try {
    co_await group.join();
  } catch (const std::exception& e) {
    if (!is_operation_aborted(std::current_exception())) {
      CORVO_LOG(error, "queue") << "queue consumer: " << e.what();
    }
  }
}

// Seconds for BLMOVE/BRPOP (Redis takes a decimal).
double seconds(std::chrono::milliseconds ms) {
  return static_cast<double>(ms.count()) / 1000.0;
}

}  // namespace

consumer_engine::consumer_engine(redis::client& r, queue_options o, handler_type h, delivery k)
    : redis(r),
      options(std::move(o)),
      handler(std::move(h)),
      kind(k),
      keys(options.name),
      reaps(r, options) {
  options.validate();
  if (!handler) {
    throw std::invalid_argument("queue consumer: no handler");
  }
  if (options.consumer.empty()) {
    options.consumer = queue_options::generated_consumer_id();
  }
  processing_key = keys.processing(options.consumer);
  heartbeat_key = keys.heartbeat(options.consumer);
}

namespace {
// Requests that never wait for a connection: a pop, an ack or the sign-off refused while
// Redis is unreachable is retried (or given up when stopping) instead of holding the
// consumer, so a stop with Redis down does not wait out drain_timeout.
redis::request::config unwaiting() {
  redis::request::config cfg;
  cfg.fail_if_not_connected = true;
  return cfg;
}
}  // namespace

// ---- taking ------------------------------------------------------------------------------

asio::awaitable<std::vector<std::string>> consumer_engine::take(std::size_t room) {
  if (reliable()) {
    std::vector<std::string> script_keys{keys.queue(), processing_key};
    std::vector<std::string> args{std::to_string(room)};
    redis::response<std::vector<std::string>> resp;
    co_await detail::take.exec(redis, std::move(script_keys), std::move(args), resp, unwaiting());
    co_return std::move(std::get<0>(resp).value());
  }
  redis::request req(unwaiting());
  req.push("RPOP", keys.queue(), room);
  redis::response<std::optional<std::vector<std::string>>> resp;
  co_await redis.exec(req, resp);
  auto& popped = std::get<0>(resp).value();
  co_return popped ? std::move(*popped) : std::vector<std::string>{};
}

asio::awaitable<std::optional<std::string>> consumer_engine::take_blocking() {
  redis::request req(unwaiting());
  if (reliable()) {
    req.push("BLMOVE", keys.queue(), processing_key, "RIGHT", "LEFT",
             seconds(options.block_timeout));
    redis::response<std::optional<std::string>> resp;
    co_await blocking->exec(req, resp);
    co_return std::move(std::get<0>(resp).value());
  }
  req.push("BRPOP", keys.queue(), seconds(options.block_timeout));
  redis::response<std::optional<std::vector<std::string>>> resp;
  co_await blocking->exec(req, resp);
  auto& popped = std::get<0>(resp).value();
  if (!popped || popped->size() != 2) {
    co_return std::nullopt;
  }
  co_return std::move((*popped)[1]);
}

// The items of our processing list that no run, pending ack or ack in flight accounts for:
// moved there by a take whose reply was lost, or left by a failure we could not record.
asio::awaitable<void> consumer_engine::adopt_orphans() {
  redis::request req(unwaiting());
  req.push("LRANGE", processing_key, 0, -1);
  redis::response<std::vector<std::string>> resp;
  co_await redis.exec(req, resp);
  auto& listed = std::get<0>(resp).value();
  std::unordered_map<std::string_view, std::size_t> known;
  for (const auto& r : runs) {
    ++known[r.value];
  }
  for (const auto* held : {&acks, &flushing}) {
    for (const auto& v : *held) {
      ++known[v];
    }
  }
  std::vector<std::string> orphans;
  for (auto it = listed.rbegin(); it != listed.rend(); ++it) {  // oldest first
    const auto found = known.find(*it);
    if (found != known.end() && found->second > 0) {
      --found->second;
    } else {
      orphans.push_back(std::move(*it));
    }
  }
  for (auto& v : orphans) {
    ++stats.adopted;
    start(std::move(v));
  }
  if (!orphans.empty()) {
    CORVO_LOG(warning, "queue") << "queue " << keys.queue() << ": consumer " << options.consumer
                                << " adopted " << orphans.size()
                                << " item(s) found in its processing list after a lost reply";
  }
}

asio::awaitable<void> consumer_engine::fetch_loop() {
  backoff delays(redis_retry);
  while (!stopping) {
    while (active >= options.max_in_flight && !stopping) {
      co_await wait(*slot_freed);
    }
    if (stopping) {
      break;
    }
    std::vector<std::string> values;
    std::exception_ptr failed;
    try {
      if (adopt_needed && reliable()) {
        adopt_needed = false;
        co_await adopt_orphans();
      }
      const auto room =
          std::min(options.batch, options.max_in_flight - std::min(active, options.max_in_flight));
      if (room > 0) {
        values = co_await take(room);
        if (values.empty() && !stopping) {
          auto one = co_await take_blocking();
          if (one) {
            values.push_back(std::move(*one));
          }
        }
      }
    } catch (...) {
      failed = std::current_exception();
    }
    if (failed) {
      if (is_operation_aborted(failed)) {
        std::rethrow_exception(failed);
      }
      ++stats.redis_errors;
      adopt_needed = true;  // a move may have happened with its reply lost
      if (redis::is_not_connected(failed)) {
        // Nothing was sent (e.g. the blocking connection is still being set up).
        CORVO_LOG(debug, "queue") << "queue " << keys.queue()
                                  << ": taking items: not connected; retrying";
      } else {
        CORVO_LOG(warning, "queue")
            << "queue " << keys.queue() << ": taking items failed: " << corvo::describe(failed)
            << "; retrying";
      }
      fetch_sleeping = true;  // a stop does not wait for this delay (run())
      co_await sleep_for(delays.next());
      fetch_sleeping = false;
      continue;
    }
    delays.reset();
    if (!values.empty()) {
      ++stats.takes;
    }
    for (auto& v : values) {
      start(std::move(v));
    }
  }
}

// ---- handling ----------------------------------------------------------------------------

struct run_completion {
  consumer_engine* engine;
  consumer_engine::run_iterator run;
  void operator()(std::exception_ptr e) const { engine->finished(run, e); }
};

void consumer_engine::start(std::string value) {
  ++stats.taken;
  ++active;
  auto run = runs.emplace(runs.end());
  run->value = std::move(value);
  const auto envelope = decode_envelope(run->value);
  run->it.id = envelope.id;
  run->it.attempts = envelope.attempts;
  run->it.body = envelope.body;
  run->it.queue = keys.queue();
  asio::co_spawn(*executor, run_item(run),
                 asio::bind_cancellation_slot(run->signal.slot(), run_completion{this, run}));
}

void consumer_engine::finished(run_iterator run, const std::exception_ptr& e) {
  if (e) {
    CORVO_LOG(error, "queue") << "queue " << keys.queue() << ": item " << run->it.id
                              << " ended with an unexpected error: " << corvo::describe(e);
  }
  runs.erase(run);
  --active;
  slot_freed->cancel();
  if (active == 0) {
    idle->cancel();
  }
}

asio::awaitable<void> consumer_engine::run_item(run_iterator run) {
  std::string reason;
  bool ok = false;
  bool permanent = false;
  try {
    auto work = handler(run->it);
    co_await std::move(work);
    ok = true;
  } catch (const permanent_error& e) {
    permanent = true;
    reason = std::string(e.what());
  } catch (...) {
    reason = corvo::describe(std::current_exception());
  }
  // Settling must not be cancelled by a cut of the handler.
  co_await asio::this_coro::reset_cancellation_state();
  if (ok) {
    if (reliable()) {
      acks.push_back(std::move(run->value));
      acks_pending->cancel();
    } else {
      ++stats.succeeded;
    }
    co_return;
  }
  if (run->cut && stopping) {
    co_await hand_back(run->value);
    co_return;
  }
  co_await settle_failure(run->value, reason, permanent);
}

asio::awaitable<void> consumer_engine::settle_failure(const std::string& value,
                                                      const std::string& reason, bool permanent) {
  const auto envelope = decode_envelope(value);
  const std::string id(envelope.id.empty() ? "(no id)" : envelope.id);
  std::exception_ptr failed;
  long long outcome = 0;
  try {
    if (reliable()) {
      std::vector<std::string> script_keys{processing_key, keys.queue(), keys.dead(),
                                           keys.delayed()};
      const auto delay = options.retry_delay_after(envelope.attempts + 1);
      std::vector<std::string> args{value,
                                    reason,
                                    std::to_string(options.max_attempts),
                                    options.consumer,
                                    std::to_string(options.dead_letter_max),
                                    permanent ? "1" : "0",
                                    std::to_string(delay.count())};
      redis::response<long long> resp;
      co_await detail::fail.exec(redis, std::move(script_keys), std::move(args), resp);
      outcome = std::get<0>(resp).value();
    } else {
      std::vector<std::string> script_keys{keys.dead()};
      std::vector<std::string> args{value, reason, options.consumer,
                                    std::to_string(options.dead_letter_max)};
      redis::response<long long> resp;
      co_await detail::bury_popped.exec(redis, std::move(script_keys), std::move(args), resp);
      outcome = 2;
      std::get<0>(resp).value();
    }
  } catch (...) {
    failed = std::current_exception();
  }
  if (failed) {
    ++stats.redis_errors;
    if (reliable()) {
      adopt_needed = true;  // still in the processing list: handled again
      CORVO_LOG(warning, "queue") << "queue " << keys.queue() << ": item " << id << " failed ("
                                  << reason << ") and the failure could not be "
                                  << "recorded (" << corvo::describe(failed)
                                  << "); it will be handled again";
    } else {
      CORVO_LOG(error, "queue") << "queue " << keys.queue() << ": item " << id << " failed ("
                                << reason << ") and could not be dead-lettered ("
                                << corvo::describe(failed) << "); it is lost";
    }
    co_return;
  }
  if (outcome < 0) {
    ++stats.stale;
    CORVO_LOG(warning, "queue") << "queue " << keys.queue() << ": item " << id << " failed ("
                                << reason << ") after the reaper had taken it back";
  } else if (outcome == 1) {
    ++stats.retried;
    CORVO_LOG(info, "queue") << "queue " << keys.queue() << ": item " << id << " attempt "
                             << envelope.attempts + 1 << " failed, will retry: " << reason;
  } else if (outcome == 3) {
    ++stats.delayed;
    delayed_added = true;
    if (promote_wakeup) {
      promote_wakeup->cancel();
    }
    CORVO_LOG(info, "queue") << "queue " << keys.queue() << ": item " << id << " attempt "
                             << envelope.attempts + 1 << " failed, will retry in "
                             << options.retry_delay_after(envelope.attempts + 1).count()
                             << " ms: " << reason;
  } else {
    ++stats.dead_lettered;
    CORVO_LOG(warning, "queue") << "queue " << keys.queue() << ": item " << id
                                << " dead-lettered after " << envelope.attempts + 1
                                << " attempt(s): " << reason;
  }
}

asio::awaitable<void> consumer_engine::hand_back(const std::string& value) {
  std::exception_ptr failed;
  try {
    if (reliable()) {
      std::vector<std::string> script_keys{processing_key, keys.queue()};
      std::vector<std::string> args{value};
      redis::response<long long> resp;
      co_await detail::hand_back.exec(redis, std::move(script_keys), std::move(args), resp);
      if (std::get<0>(resp).value() == 0) {
        ++stats.stale;
        co_return;
      }
    } else {
      redis::request req;
      req.push("RPUSH", keys.queue(), value);
      redis::response<long long> resp;
      co_await redis.exec(req, resp);
      std::get<0>(resp).value();
    }
    ++stats.handed_back;
  } catch (...) {
    failed = std::current_exception();
  }
  if (failed) {
    ++stats.redis_errors;
    CORVO_LOG(error, "queue") << "queue " << keys.queue()
                              << ": could not hand an unfinished item back ("
                              << corvo::describe(failed) << ")"
                              << (reliable() ? "; the reaper will" : "; it is lost");
  }
}

// ---- acknowledging -----------------------------------------------------------------------

asio::awaitable<bool> consumer_engine::flush_acks(bool& unreachable) {
  constexpr std::size_t most = 1000;
  if (acks.size() <= most) {
    flushing = std::exchange(acks, {});
  } else {
    flushing.assign(std::make_move_iterator(acks.begin()),
                    std::make_move_iterator(acks.begin() + most));
    acks.erase(acks.begin(), acks.begin() + most);
  }
  std::exception_ptr failed;
  try {
    // One LREM per item, pipelined in one request: cheaper for the server than the same
    // loop in a script (no Lua values made of every item).
    redis::request req(unwaiting());
    req.reserve(flushing.size() * (flushing.front().size() + processing_key.size() + 40));
    for (const auto& v : flushing) {
      req.push("LREM", processing_key, -1, v);
    }
    redis::generic_response resp;
    co_await redis.exec(req, resp);
    std::uint64_t removed = 0;
    for (const auto& node : resp) {
      if (node.data_type == redis::resp3::type::integer) {
        removed += node.value == "1" ? 1 : 0;
      } else {
        throw std::runtime_error("queue ack: " + node.value);
      }
    }
    stats.succeeded += removed;
    stats.stale += flushing.size() - std::min<std::uint64_t>(removed, flushing.size());
  } catch (...) {
    failed = std::current_exception();
  }
  if (!failed) {
    flushing.clear();
    co_return true;
  }
  acks.insert(acks.begin(), std::make_move_iterator(flushing.begin()),
              std::make_move_iterator(flushing.end()));
  flushing.clear();
  if (is_operation_aborted(failed)) {
    std::rethrow_exception(failed);
  }
  ++stats.redis_errors;
  unreachable = redis::is_unreachable(failed);
  CORVO_LOG(warning, "queue") << "queue " << keys.queue() << ": ack of " << acks.size()
                              << " item(s) failed: " << corvo::describe(failed) << "; retrying";
  co_return false;
}

asio::awaitable<void> consumer_engine::acker() {
  backoff delays(redis_retry);
  int failures_while_finishing = 0;
  for (;;) {
    if (acks.empty()) {
      if (finishing) {
        co_return;
      }
      co_await wait(*acks_pending);
      continue;
    }
    bool unreachable = false;
    if (co_await flush_acks(unreachable)) {
      delays.reset();
      continue;
    }
    // Stopping with Redis unreachable (connection down, or CLUSTERDOWN): not waited for.
    if (finishing && (unreachable || ++failures_while_finishing >= 3)) {
      CORVO_LOG(error, "queue") << "queue " << keys.queue() << ": could not acknowledge "
                                << acks.size()
                                << " finished item(s) before stopping; the reaper will put them "
                                   "back in the queue (they will be handled again)";
      co_return;
    }
    asio::steady_timer pause(*executor, finishing ? redis_retry.initial : delays.next());
    ack_sleep = &pause;
    error_code ec;
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    ack_sleep = nullptr;
    if (ec == asio::error::operation_aborted && !finishing) {
      throw boost::system::system_error(ec);  // cancelled, not woken by finishing
    }
  }
}

// ---- retry delay -----------------------------------------------------------------------

// Moves due items of the delayed set back to the queue: at once when this consumer delayed
// one (a new earliest due time), then when the earliest is due, and at least every
// min(retry_delay, 1 s) for items other processes delayed (they may have died since).
asio::awaitable<void> consumer_engine::promote_loop() {
  constexpr std::size_t most = 1000;
  const auto poll = std::clamp(options.retry_delay, std::chrono::milliseconds(10),
                               std::chrono::milliseconds(1000));
  backoff delays(redis_retry);
  for (;;) {
    delayed_added = false;
    auto pause = poll;
    std::exception_ptr failed;
    try {
      std::vector<std::string> script_keys{keys.delayed(), keys.queue()};
      std::vector<std::string> args{std::to_string(most)};
      redis::response<std::vector<long long>> resp;
      co_await detail::promote_due.exec(redis, std::move(script_keys), std::move(args), resp);
      const auto& result = std::get<0>(resp).value();
      const long long moved = result.size() > 0 ? result[0] : 0;
      const long long wait_ms = result.size() > 1 ? result[1] : -1;
      stats.promoted += static_cast<std::uint64_t>(moved);
      if (moved >= static_cast<long long>(most)) {
        pause = std::chrono::milliseconds(0);
      } else if (wait_ms >= 0) {
        pause = std::min(pause, std::chrono::milliseconds(wait_ms));
      }
      delays.reset();
    } catch (...) {
      failed = std::current_exception();
    }
    if (failed) {
      if (is_operation_aborted(failed)) {
        std::rethrow_exception(failed);
      }
      ++stats.redis_errors;
      CORVO_LOG(warning, "queue") << "queue " << keys.queue() << ": moving due delayed items "
                                  << "failed: " << corvo::describe(failed) << "; retrying";
      pause = std::chrono::duration_cast<std::chrono::milliseconds>(delays.next());
    }
    if (delayed_added || pause.count() == 0) {
      continue;
    }
    promote_wakeup->expires_after(pause);
    co_await wait(*promote_wakeup);
  }
}

// ---- heartbeat -------------------------------------------------------------------------

asio::awaitable<void> consumer_engine::beat() {
  std::vector<std::string> script_keys{heartbeat_key, keys.consumers()};
  std::vector<std::string> args{options.consumer, std::to_string(options.heartbeat_ttl.count())};
  redis::response<std::string> resp;
  co_await detail::heartbeat.exec(redis, std::move(script_keys), std::move(args), resp);
  std::get<0>(resp).value();
  ++stats.heartbeats;
}

asio::awaitable<void> consumer_engine::heartbeat_loop() {
  for (;;) {
    co_await sleep_for(options.effective_heartbeat_interval());
    std::exception_ptr failed;
    try {
      co_await beat();
    } catch (...) {
      failed = std::current_exception();
    }
    if (failed) {
      if (is_operation_aborted(failed)) {
        std::rethrow_exception(failed);
      }
      ++stats.redis_errors;
      CORVO_LOG(warning, "queue") << "queue " << keys.queue() << ": heartbeat of "
                                  << options.consumer << " failed: " << corvo::describe(failed);
    }
  }
}

// Recovers what an earlier run under this consumer id left (a fixed id after a crash), then
// announces the consumer.
asio::awaitable<void> consumer_engine::start_up() {
  co_await reaps.reap_consumer(options.consumer, true);
  co_await beat();
}

asio::awaitable<void> consumer_engine::leave() {
  std::vector<std::string> script_keys{heartbeat_key, processing_key, keys.consumers()};
  std::vector<std::string> args{options.consumer};
  redis::response<long long> resp;
  co_await detail::leave.exec(redis, std::move(script_keys), std::move(args), resp, unwaiting());
  const auto left = std::get<0>(resp).value();
  if (left > 0) {
    CORVO_LOG(warning, "queue") << "queue " << keys.queue() << ": consumer " << options.consumer
                                << " stopped with " << left
                                << " item(s) in its processing list; a reaper returns them";
  }
}

// ---- life ------------------------------------------------------------------------------

struct fetch_completion {
  consumer_engine* engine;
  void operator()(std::exception_ptr e) const {
    engine->fetch_done = true;
    if (e && !is_operation_aborted(e)) {
      engine->fetch_failure = e;
    }
    engine->fetch_finished->cancel();
  }
};

asio::awaitable<void> consumer_engine::wait_for_fetch_or_cancel() {
  while (!fetch_done) {
    if (abandoned) {
      throw boost::system::system_error(asio::error::operation_aborted);
    }
    co_await wait(*fetch_finished);
    const auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) {
      throw boost::system::system_error(asio::error::operation_aborted);
    }
  }
}

void consumer_engine::abandon() {
  abandoned = true;  // never reset: the queue object is gone, no run can follow
  if (!running) {
    return;
  }
  if (fetch_finished) {
    fetch_finished->cancel();
  }
}

asio::awaitable<bool> consumer_engine::wait_until(asio::steady_timer& notify,
                                                  std::function<bool()> done,
                                                  std::chrono::steady_clock::duration timeout) {
  auto expired = std::make_shared<bool>(false);
  asio::steady_timer limit(*executor, timeout);
  limit.async_wait([expired, &notify](error_code ec) {
    if (!ec) {
      *expired = true;
      notify.cancel();
    }
  });
  while (!done() && !*expired) {
    co_await wait(notify);
  }
  limit.cancel();
  co_return done();
}

asio::awaitable<void> consumer_engine::run() {
  if (running) {
    throw std::logic_error("queue consumer: run() is already running");
  }
  if (abandoned) {
    // The queue object was destroyed before this run began.
    throw boost::system::system_error(asio::error::operation_aborted);
  }
  running = true;
  stopping = false;
  finishing = false;
  fetch_done = false;
  fetch_failure = nullptr;
  adopt_needed = false;
  auto ex = co_await asio::this_coro::executor;
  executor = ex;
  slot_freed = notifier(ex);
  idle = notifier(ex);
  acks_pending = notifier(ex);
  fetch_finished = notifier(ex);
  promote_wakeup = notifier(ex);
  blocking = redis.dedicated();

  task_group background(ex);
  task_group ackers(ex);
  std::exception_ptr ended_by;
  bool fetching = false;
  bool started = false;
  try {
    co_await background.spawn(run_client(*blocking));
    if (reliable()) {
      retry_policy forever{redis_retry, 0};
      co_await corvo::retry([this] { return start_up(); }, forever);
      started = true;
      co_await background.spawn(heartbeat_loop());
      if (options.reap) {
        co_await background.spawn(reaps.run());
      }
      if (options.retry_delay.count() > 0) {
        co_await background.spawn(promote_loop());
      }
      co_await ackers.spawn(acker());
    }
    asio::co_spawn(ex, fetch_loop(),
                   asio::bind_cancellation_slot(fetch_signal.slot(), fetch_completion{this}));
    fetching = true;
    co_await wait_for_fetch_or_cancel();
  } catch (...) {
    ended_by = std::current_exception();
  }
  co_await asio::this_coro::reset_cancellation_state();
  stopping = true;
  slot_freed->cancel();
  // Reliable: the whole stop is bounded by drain_timeout (each Redis wait gets at least a
  // short floor), so a stop while Redis is down or hung ends in time; nothing is lost by
  // giving up on Redis: an item a BLMOVE moved is in the processing list, an item not
  // acked is delivered again. A work queue keeps waiting for its pop (see below).
  const auto stop_deadline = steady::now() + options.drain_timeout;
  const auto left = [&](steady::duration floor) {
    return std::max<steady::duration>(floor, stop_deadline - steady::now());
  };
  const auto redis_floor =
      std::min<steady::duration>(options.drain_timeout, std::chrono::milliseconds(100));
  if (fetching) {
    // The pop in progress returns within block_timeout (plus the reply deadline slack). A
    // work queue waits for it (abandoning a BRPOP could lose its item); a reliable queue
    // waits at most until the stop deadline.
    steady::duration limit = options.block_timeout + std::chrono::seconds(2);
    if (reliable()) {
      limit = std::min(limit, left(redis_floor));
    }
    if (fetch_sleeping) {
      limit = steady::duration::zero();  // waiting out a Redis failure: no pop in flight
    }
    if (!co_await wait_until(
            *fetch_finished, [this] { return fetch_done; }, limit)) {
      CORVO_LOG(warning, "queue") << "queue " << keys.queue()
                                  << ": the pop in progress did not return; abandoning it";
      fetch_signal.emit(asio::cancellation_type::terminal);
      co_await wait_until(
          *fetch_finished, [this] { return fetch_done; }, std::chrono::hours(24));
    }
    if (fetch_failure && !ended_by) {
      ended_by = fetch_failure;
    }
  }
  // Drain: running handlers finish, or are cut and handed back.
  const auto drain_limit = reliable() ? left(steady::duration::zero()) : options.drain_timeout;
  if (!co_await wait_until(
          *idle, [this] { return active == 0; }, drain_limit)) {
    CORVO_LOG(warning, "queue") << "queue " << keys.queue() << ": " << active
                                << " item(s) still running after the drain timeout; cancelling "
                                   "and handing them back";
    for (auto& r : runs) {
      if (!r.cut) {
        r.cut = true;
        r.signal.emit(asio::cancellation_type::terminal);
      }
    }
    co_await wait_until(
        *idle, [this] { return active == 0; }, std::chrono::hours(24));
  }
  finishing = true;
  acks_pending->cancel();
  if (ack_sleep != nullptr) {
    ack_sleep->cancel();
  }
  // Acked: the acker finished with nothing left (it gives up at once on an unreachable
  // Redis, leaving its acks).
  const bool acked =
      co_await ackers.join_for(reliable() ? left(redis_floor) : options.drain_timeout) &&
      acks.empty();
  if (!acked) {
    ackers.cancel();
  }
  co_await join_quietly(ackers);
  // Signing off gets what is left of the stop deadline (at least the floor, at most 2 s);
  // skipped when Redis did not take the last acks in time (down or hung): the heartbeat
  // expires.
  const auto sign_off_limit =
      std::min<steady::duration>(std::chrono::seconds(2), left(redis_floor));
  if (started && !acked) {
    CORVO_LOG(warning, "queue") << "queue " << keys.queue() << ": consumer " << options.consumer
                                << " stopped without signing off (its last acks did not reach "
                                   "Redis in time); its heartbeat expires after heartbeat_ttl";
  } else if (started) {
    try {
      auto going = leave();
      co_await corvo::with_timeout(std::move(going), sign_off_limit);
    } catch (const std::exception& e) {
      CORVO_LOG(warning, "queue") << "queue " << keys.queue() << ": consumer " << options.consumer
                                  << " could not sign off (" << e.what()
                                  << "); its heartbeat expires after heartbeat_ttl";
    }
  }
  background.cancel();
  blocking->cancel();
  co_await join_quietly(background);
  running = false;
  if (!ended_by) {
    ended_by = std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted));
  }
  std::rethrow_exception(ended_by);
}

}  // namespace corvo::queue::detail
