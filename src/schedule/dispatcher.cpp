#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/trace.hpp>
#include <corvo/redis/error.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <map>
#include <memory>
#include <random>
#include <set>

namespace corvo::schedule {
namespace {

using steady = std::chrono::steady_clock;
using boost::system::error_code;

}  // namespace

struct dispatcher::impl {
  impl(store& s, sink& k, dispatcher_options o) : tasks(s), out(k), options(std::move(o)) {}

  // Why the dispatcher cancelled a run. Only `stop` is a hand-back; the others are counted.
  enum class cut_reason { none, stop, timeout, lease_lost };

  // One run in flight. Its handler runs in a child coroutine bound to `signal`, so the
  // dispatcher can cancel this run alone.
  struct run_state {
    explicit run_state(const asio::any_io_executor& ex) : timer(ex) {}
    std::string id;
    std::string token;
    unsigned shard = 0;
    // When the request that set the current lease was sent: the lease ends no earlier than
    // this plus the lease length on the store's clock.
    steady::time_point renewed_at{};
    // Past this the lease may be someone else's: the run is cut as lost.
    steady::time_point lease_until{};
    // The run timeout (max: none).
    steady::time_point deadline = steady::time_point::max();
    std::chrono::milliseconds timeout{0};
    asio::cancellation_signal signal;
    cut_reason cut = cut_reason::none;
    asio::steady_timer timer;  // fires at min(deadline, lease_until)
  };

  // Everything one shard needs: its claim loop, acker and lease renewer never wait on
  // another shard's store calls.
  struct shard_state {
    std::unique_ptr<asio::steady_timer> timer;
    bool woken = false;
    std::vector<completion> acks;
    // The store's clock at the last claim, and ours then: the store's now, estimated.
    time_point store_now{};
    steady::time_point claimed_at{};

    // A time of the store's clock on ours, estimated from the last claim (the store's
    // clock then, and ours when the reply arrived: never earlier than the real moment).
    steady::time_point steady_of(time_point store_time) const {
      return claimed_at + std::chrono::duration_cast<steady::duration>(store_time - store_now);
    }
    // Our now on the store's clock, by the same estimate.
    time_point store_time_now() const {
      return store_now +
             std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - claimed_at);
    }
    // A claim's round trip, smoothed (7/8 old + 1/8 new): how long before a due time the
    // next claim is sent when the store claims ahead.
    steady::duration claim_rtt{};
    std::unique_ptr<asio::steady_timer> acks_pending;  // notifier: acks to send
    std::map<std::string, std::shared_ptr<run_state>>
        runs;  // by task id: a re-claim of the same id here replaces the older run
  };

  store& tasks;
  sink& out;
  dispatcher_options options;
  dispatcher_stats stats;
  std::vector<start_observer> observers;

  bool running = false;
  // Set by run() once claiming has stopped: from then on a run cut with cut_reason::stop is
  // handed back. Never inferred from an exception.
  bool stopping = false;
  // Set once every run has ended: ackers send what is left and finish.
  bool finishing = false;
  // Store calls (acks, failure reports) sleeping before a retry; woken when stopping and
  // when finishing begin.
  std::set<asio::steady_timer*> store_sleeps;
  std::optional<asio::any_io_executor> executor;
  std::optional<task_group> workers;
  std::vector<shard_state> shards;
  std::size_t reserved = 0;  // slots promised to claims in progress
  // Runs started and not yet finished. Counted here, not by workers->in_flight(): a run
  // announces its free slot before the task group sees the child finish, and waiters that
  // woke on that announcement must already see the slot free (else the wake-up is lost).
  std::size_t active = 0;
  // Timer used as a broadcast notifier: expiry at max, woken by cancel().
  std::unique_ptr<asio::steady_timer> slot_freed;
  std::mt19937_64 random{std::random_device{}()};

  static std::unique_ptr<asio::steady_timer> notifier(const asio::any_io_executor& ex) {
    auto t = std::make_unique<asio::steady_timer>(ex);
    t->expires_at(steady::time_point::max());
    return t;
  }

  static asio::awaitable<void> wait(asio::steady_timer& t) {
    error_code ignored;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }

  void wake(unsigned shard) {
    if (!running || shard >= shards.size()) {
      return;
    }
    shards[shard].woken = true;
    shards[shard].timer->cancel();
  }

  // The policy of a task type, or null.
  const type_policy* policy_of(const task& t) const {
    const auto it = options.types.find(t.type);
    return it == options.types.end() ? nullptr : &it->second;
  }

  // The delay before the retry of `t` (attempts: tries so far): its own backoff, else its
  // type's, else the dispatcher's (full jitter when that says so).
  std::chrono::microseconds retry_delay(const task& t) {
    retry_backoff b;
    if (t.retry) {
      b = *t.retry;
    } else if (const auto* p = policy_of(t); p != nullptr && p->retry) {
      b = *p->retry;
    } else {
      const auto& d = options.retry_backoff;
      b = retry_backoff{d.initial, d.max, d.multiplier, d.jitter ? 1.0 : 0.0};
    }
    const auto attempts = t.attempts;
    double ceiling = static_cast<double>(b.initial.count()) *
                     std::pow(b.multiplier, attempts > 0 ? static_cast<double>(attempts - 1) : 0.0);
    ceiling = std::min(ceiling, static_cast<double>(b.max.count()));
    const double ms =
        std::uniform_real_distribution<double>(ceiling * (1.0 - b.jitter), ceiling)(random);
    return std::chrono::microseconds(static_cast<std::int64_t>(ms * 1000));
  }

  // The lease as this process may count on it: a tenth short of its length, measured from
  // when the request that took or renewed it was sent.
  steady::time_point lease_end(steady::time_point sent) const {
    return sent + options.lease - options.lease / 10;
  }

  // ---- claiming ---------------------------------------------------------------------------

  asio::awaitable<void> wait_for_free_slot() {
    while (active + reserved >= options.max_in_flight) {
      co_await wait(*slot_freed);
    }
  }

  // Most slots one claim may reserve: a claim that hangs (its shard's server stopped) holds
  // its reservation until it fails. With several shards a claim takes at most half of the
  // free slots, so k hung claims leave at least 1/2^k of them to the healthy shards.
  std::size_t claim_share() const {
    const std::size_t free = options.max_in_flight - active - reserved;
    return shards.size() > 1 ? std::max<std::size_t>(1, free / 2) : free;
  }

  bool shard_available(unsigned s) const {
    return !options.shard_available || options.shard_available(s);
  }

  asio::awaitable<void> shard_loop(unsigned s) {
    backoff store_delays(options.store_retry);
    auto& state = shards[s];
    for (;;) {
      // Availability is checked after the wait for a slot too: that wait can be long (sends
      // stuck while Kafka is down), and the sink may have become unavailable meanwhile.
      while (!out.available() || !shard_available(s) ||
             active + reserved >= options.max_in_flight) {
        if (!out.available() || !shard_available(s)) {
          state.timer->expires_after(std::chrono::milliseconds(100));
          co_await wait(*state.timer);
        } else {
          co_await wait_for_free_slot();
        }
      }
      const std::size_t limit =
          std::min({options.claim_batch, options.max_in_flight - active - reserved, claim_share()});
      reserved += limit;
      state.woken = false;
      std::exception_ptr failed;
      claim_result claimed;
      const auto sent_at = steady::now();
      try {
        claimed = co_await tasks.claim(s, limit, options.lease);
      } catch (...) {
        failed = std::current_exception();
      }
      reserved -= limit;
      if (claimed.tasks.size() < limit) {
        slot_freed->cancel();  // unused reservation: other shard loops may claim now
      }
      if (failed) {
        if (is_operation_aborted(failed)) {
          std::rethrow_exception(failed);
        }
        ++stats.store_errors;
        CORVO_LOG(warning, "scheduler")
            << "claim on shard " << s << " failed: " << corvo::describe(failed);
        state.timer->expires_after(store_delays.next());
        co_await wait(*state.timer);
        continue;
      }
      store_delays.reset();
      const auto claimed_at = steady::now();
      const auto rtt = claimed_at - sent_at;
      state.claim_rtt =
          state.claim_rtt == steady::duration::zero() ? rtt : (state.claim_rtt * 7 + rtt) / 8;
      state.store_now = claimed.store_now;
      state.claimed_at = claimed_at;
      ++stats.claims;
      stats.claimed += claimed.tasks.size();
      const bool backlog = claimed.tasks.size() == limit && limit > 0;
      for (auto& t : claimed.tasks) {
        ++active;
        // A task claimed ahead of its due time (redis_store_options::claim_ahead) starts at
        // it, mapped from the store's clock onto ours like the sleep below.
        const auto start_at =
            t.work.due > claimed.store_now ? state.steady_of(t.work.due) : steady::time_point{};
        co_await workers->spawn(run_task(std::move(t), sent_at, start_at));
      }
      if (backlog || state.woken) {
        continue;
      }
      // Sleep until the store's next due time (or lease expiry, or when a permit frees for
      // tasks a limit holds back), translated from the store's clock to ours, capped by
      // max_sleep. A store that claims ahead is asked that much earlier: twice the claim's
      // round trip, at most half its window. The task then waits for its due time here, so
      // the round trip is not added to its start, and the claim still takes what falls due
      // within the other half of the window.
      auto deadline = claimed_at + options.max_sleep;
      const auto lead = std::min(std::chrono::duration_cast<steady::duration>(claimed.ahead / 2),
                                 state.claim_rtt * 2);
      const std::optional<time_point> claimable =
          claimed.next_due
              ? std::optional<time_point>(
                    *claimed.next_due - std::chrono::duration_cast<std::chrono::microseconds>(lead))
              : std::nullopt;
      for (const auto& next : {claimable, claimed.next_lease_expiry, claimed.permit_at}) {
        if (next) {
          deadline = std::min(deadline, std::max(state.steady_of(*next), claimed_at));
        }
      }
      if (deadline <= steady::now()) {
        continue;
      }
      state.timer->expires_at(deadline);
      co_await wait(*state.timer);
      if (state.woken) {
        ++stats.wakes;
      }
    }
  }

  // ---- running ------------------------------------------------------------------------------

  // The next occurrence after a run of `t`, on the store's clock (due times are judged on
  // it, not on ours) and from the occurrence the run belongs to (not its retried due time).
  std::optional<time_point> next_run_of(const claimed_task& t) {
    if (std::holds_alternative<std::monostate>(t.work.repeat)) {
      return std::nullopt;
    }
    const auto& shard = shards[t.shard];
    const auto store_now = shard.store_time_now();
    try {
      return next_run_after(t.work.repeat, t.work.occurrence, store_now);
    } catch (const std::exception& e) {
      CORVO_LOG(error, "scheduler") << "task " << t.work.id << ": cannot compute its next run ("
                                    << e.what() << "); it will not recur";
      return std::nullopt;
    }
  }

  // The run timeout of `t`: its own, else its type's, else the dispatcher's; zero means none.
  std::chrono::milliseconds run_limit(const task& t) const {
    if (t.timeout && t.timeout->count() > 0) {
      return *t.timeout;
    }
    if (const auto* p = policy_of(t); p != nullptr && p->run_timeout) {
      return *p->run_timeout;
    }
    return options.run_timeout;
  }

  // Cancels one run (its handler sees operation_aborted); the first reason counts.
  static void cut(run_state& r, cut_reason why) {
    if (r.cut != cut_reason::none) {
      return;
    }
    r.cut = why;
    r.signal.emit(asio::cancellation_type::terminal);
  }

  struct run_timer_fired {
    std::weak_ptr<run_state> run;
    void operator()(error_code ec) const {
      if (ec) {
        return;  // re-armed, or the run ended
      }
      if (const auto r = run.lock()) {
        check_run(r);
      }
    }
  };

  static void arm(const std::shared_ptr<run_state>& r) {
    r->timer.expires_at(std::min(r->deadline, r->lease_until));
    r->timer.async_wait(run_timer_fired{r});
  }

  static void check_run(const std::shared_ptr<run_state>& r) {
    if (r->cut != cut_reason::none) {
      return;
    }
    const auto now = steady::now();
    if (now >= r->deadline) {
      cut(*r, cut_reason::timeout);
    } else if (now >= r->lease_until) {
      cut(*r, cut_reason::lease_lost);  // no renewal got through in time
    } else {
      arm(r);  // renewed meanwhile
    }
  }

  void cut_every_run(cut_reason why) {
    for (auto& s : shards) {
      for (auto& [id, r] : s.runs) {
        cut(*r, why);
      }
    }
  }

  static asio::awaitable<void> deliver_to(sink& out, const claimed_task& t) {
    co_await out.deliver(t);
  }

  asio::awaitable<void> run_task(claimed_task t, steady::time_point lease_sent,
                                 steady::time_point start_at) {
    auto ex = co_await asio::this_coro::executor;
    auto run = std::make_shared<run_state>(ex);
    run->id = t.work.id;
    run->token = t.token;
    run->shard = t.shard;
    run->renewed_at = lease_sent;
    run->lease_until = lease_end(lease_sent);
    run->timeout = run_limit(t.work);
    if (run->timeout.count() > 0) {
      run->deadline = steady::now() + run->timeout;
    }
    // By id, not token: when this process claims a task again after its lease here was lost
    // (expired or replaced), the older run is cut and the newer one takes its place.
    auto& runs = shards[t.shard].runs;
    if (const auto old = runs.find(t.work.id); old != runs.end()) {
      cut(*old->second, cut_reason::lease_lost);
      old->second = run;
    } else {
      runs.emplace(t.work.id, run);
    }
    arm(run);
    // Claimed ahead of its due time: wait for it (the lease is held meanwhile; a stop or a
    // lost lease cuts the wait like a run).
    if (start_at > steady::now()) {
      asio::steady_timer until(ex, start_at);
      error_code ignored;
      co_await until.async_wait(asio::bind_cancellation_slot(
          run->signal.slot(), asio::redirect_error(asio::use_awaitable, ignored)));
    }
    const bool cut_before_start = run->cut != cut_reason::none;
    if (!cut_before_start) {
      for (const auto& observer : observers) {
        observer(t);
      }
    }
    std::exception_ptr error;
    std::string reason;
    bool permanent = false;
    if (t.work.type.empty()) {
      permanent = true;
      reason = t.work.last_error.empty() ? "task record has no type" : t.work.last_error;
    } else if (cut_before_start) {
      error = std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted));
      reason = "cut before its due time";
    } else {
      try {
        auto work = deliver_to(out, t);
        co_await asio::co_spawn(
            ex, std::move(work),
            asio::bind_cancellation_slot(run->signal.slot(), asio::use_awaitable));
      } catch (const permanent_error& e) {
        permanent = true;
        reason = e.what();
      } catch (...) {
        error = std::current_exception();
        reason = corvo::describe(error);
      }
    }
    if (const auto it = shards[t.shard].runs.find(t.work.id);
        it != shards[t.shard].runs.end() && it->second == run) {
      shards[t.shard].runs.erase(it);
    }
    run->timer.cancel();
    --active;
    slot_freed->cancel();
    const auto cut = run->cut;
    if (cut == cut_reason::lease_lost) {
      ++stats.lease_lost;
      CORVO_LOG(warning, "scheduler") << "task " << t.work.id << " (" << t.work.type
                                      << "): its lease was lost (cancelled, replaced, or not "
                                         "renewed in time); the run was cancelled";
    }

    if (!permanent && !error) {
      auto& shard = shards[t.shard];
      shard.acks.push_back({t.work.id, t.token, next_run_of(t)});
      shard.acks_pending->cancel();
      co_return;
    }
    if (cut == cut_reason::lease_lost) {
      co_return;  // the lease is someone else's (or gone): nothing to report
    }
    // Only a run the dispatcher itself cut while stopping is handed back uncounted.
    const bool handed_back = stopping && cut == cut_reason::stop;
    if (cut == cut_reason::timeout && !permanent) {
      ++stats.timed_out;
      reason = "run timed out after " + std::to_string(run->timeout.count()) + " ms";
    }
    const bool dead = permanent || (!handed_back && t.work.attempts >= t.work.max_attempts);
    failure_outcome(t, reason, dead, handed_back);
    failure f{t.work.id, t.token, reason, std::nullopt};
    if (!dead) {
      f.retry_in = handed_back ? std::chrono::microseconds(0) : retry_delay(t.work);
    }
    co_await report_failure(t.shard, std::move(f));
  }

  void failure_outcome(const claimed_task& t, const std::string& reason, bool dead,
                       bool handed_back) {
    if (handed_back) {
      return;
    }
    if (dead) {
      ++stats.dead_lettered;
      CORVO_LOG_TRACED(warning, "scheduler", t.work.traceparent)
          << "task " << t.work.id << " (" << t.work.type << ") dead-lettered after "
          << t.work.attempts << " attempt(s): " << reason;
    } else {
      ++stats.retried;
      CORVO_LOG_TRACED(info, "scheduler", t.work.traceparent)
          << "task " << t.work.id << " (" << t.work.type << ") attempt " << t.work.attempts
          << " failed, will retry: " << reason;
    }
  }

  // Records a failed run in the store (nack). The store does not wait for a connection: while
  // it cannot reach its server the report is retried with backoff, but a stopping dispatcher
  // gives it up at once instead of holding its stop until Redis is back (the task runs again
  // when its lease expires, as after any lost report).
  asio::awaitable<void> report_failure(unsigned shard, failure f) {
    backoff delays(options.store_retry);
    for (;;) {
      std::exception_ptr failed;
      try {
        if (!co_await tasks.nack(shard, f)) {
          ++stats.stale;
        }
        co_return;
      } catch (...) {
        failed = std::current_exception();
      }
      ++stats.store_errors;
      if (stopping || !redis::is_unreachable(failed)) {
        CORVO_LOG(warning, "scheduler")
            << "task " << f.id << ": could not record the failure (" << corvo::describe(failed)
            << "); it runs again when its lease expires";
        co_return;
      }
      co_await store_sleep(delays.next());
    }
  }

  // ---- acknowledging ------------------------------------------------------------------------

  // Sends the pending acks of shard `s` in one batch; a failed batch is kept for the next try
  // (`unreachable` set when the store refused it because its connection is down, or its
  // cluster cannot serve the shard now: CLUSTERDOWN).
  asio::awaitable<bool> flush_acks(unsigned s, bool& unreachable) {
    auto& shard = shards[s];
    auto batch = std::exchange(shard.acks, {});
    const auto count = batch.size();
    std::exception_ptr failed;
    try {
      const auto acked = co_await tasks.ack(s, batch);
      stats.succeeded += acked;
      stats.stale += count - acked;
    } catch (...) {
      failed = std::current_exception();
    }
    if (!failed) {
      co_return true;
    }
    shard.acks.insert(shard.acks.begin(), batch.begin(), batch.end());
    if (is_operation_aborted(failed)) {
      std::rethrow_exception(failed);
    }
    ++stats.store_errors;
    unreachable = redis::is_unreachable(failed);
    CORVO_LOG(warning, "scheduler") << "ack of " << count << " task(s) on shard " << s
                                    << " failed: " << corvo::describe(failed) << "; retrying";
    co_return false;
  }

  bool acks_waiting() const {
    for (const auto& s : shards) {
      if (!s.acks.empty())
        return true;
    }
    return false;
  }

  // One per shard: a shard whose store calls hang holds up only its own acks.
  asio::awaitable<void> acker(unsigned s) {
    backoff delays(options.store_retry);
    auto& shard = shards[s];
    int failures_while_finishing = 0;
    for (;;) {
      if (shard.acks.empty()) {
        if (finishing) {
          co_return;
        }
        co_await wait(*shard.acks_pending);
        continue;
      }
      bool unreachable = false;
      if (co_await flush_acks(s, unreachable)) {
        delays.reset();
        continue;
      }
      // Stopping: a store that cannot reach its server (connection down) is not waited for.
      if (finishing && (unreachable || ++failures_while_finishing >= 3)) {
        CORVO_LOG(error, "scheduler")
            << "could not acknowledge " << shard.acks.size() << " finished task(s) of shard " << s
            << " before stopping; they run again when their leases "
               "expire";
        co_return;
      }
      co_await store_sleep(finishing ? options.store_retry.initial : delays.next());
    }
  }

  // A retry delay of a store call (an ack, a failure report), cut short when stopping begins
  // and when finishing begins.
  asio::awaitable<void> store_sleep(std::chrono::milliseconds delay) {
    asio::steady_timer timer(*executor, delay);
    store_sleeps.insert(&timer);
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    store_sleeps.erase(&timer);
    if (ec == asio::error::operation_aborted && !stopping) {
      throw boost::system::system_error(ec);  // cancelled, not woken
    }
  }

  void wake_store_sleeps() {
    for (auto* t : store_sleeps) {
      t->cancel();
    }
  }

  // ---- leases -------------------------------------------------------------------------------

  // One per shard, from the first claim until the last run has ended (draining included).
  // A lease the store no longer holds for us cuts its run.
  asio::awaitable<void> renewer(unsigned s) {
    const auto period =
        std::max<std::chrono::milliseconds>(options.lease / 3, std::chrono::milliseconds(1));
    auto& shard = shards[s];
    for (;;) {
      co_await sleep_for(period);
      std::vector<lease_ref> leases;
      std::vector<std::shared_ptr<run_state>> runs;
      // Renewed at least every 1.5 periods: well before the lease (3 periods, counted here
      // from 2.7) runs out, even when this loop wakes late.
      const auto cutoff = steady::now() - period / 2;
      for (const auto& [id, r] : shard.runs) {
        if (r->cut == cut_reason::none && r->renewed_at <= cutoff) {
          leases.push_back({r->id, r->token});
          runs.push_back(r);
        }
      }
      if (leases.empty()) {
        continue;
      }
      const auto sent_at = steady::now();
      std::vector<bool> held;
      std::exception_ptr failed;
      try {
        held = co_await tasks.extend(s, std::move(leases), options.lease);
      } catch (...) {
        failed = std::current_exception();
      }
      if (failed) {
        if (is_operation_aborted(failed)) {
          std::rethrow_exception(failed);
        }
        ++stats.store_errors;
        CORVO_LOG(warning, "scheduler")
            << "lease extension on shard " << s << " failed: " << corvo::describe(failed);
        continue;  // the runs are cut when their leases run out here
      }
      for (std::size_t i = 0; i < runs.size(); ++i) {
        if (i < held.size() && held[i]) {
          runs[i]->renewed_at = sent_at;
          runs[i]->lease_until = lease_end(sent_at);
        } else {
          cut(*runs[i], cut_reason::lease_lost);
        }
      }
    }
  }

  // ---- wake-ups -----------------------------------------------------------------------------

  struct wake_callback {
    impl* self;
    void operator()(unsigned shard) const { self->wake(shard); }
  };

  asio::awaitable<void> watcher() {
    backoff delays(options.store_retry);
    for (;;) {
      std::exception_ptr failed;
      try {
        std::function<void(unsigned)> callback = wake_callback{this};
        co_await tasks.watch_wakes(std::move(callback));
      } catch (...) {
        failed = std::current_exception();
      }
      if (failed && is_operation_aborted(failed)) {
        std::rethrow_exception(failed);
      }
      CORVO_LOG(warning, "scheduler")
          << "wake-up subscription ended: " << corvo::describe(failed) << "; re-subscribing";
      co_await sleep_for(delays.next());
    }
  }

  // ---- life -------------------------------------------------------------------------------

  static asio::awaitable<void> join_quietly(task_group& group) {
    try {
      co_await group.join();
    } catch (const std::exception& e) {
      if (!is_operation_aborted(std::current_exception())) {
        CORVO_LOG(error, "scheduler") << "dispatcher: " << e.what();
      }
    }
  }

  asio::awaitable<void> run() {
    if (running) {
      throw std::logic_error("dispatcher::run() is already running");
    }
    if (auto limits = limits_of(options.types); !limits.empty()) {
      tasks.set_limits(std::move(limits));  // before any claim
    }
    co_await tasks.open();  // e.g. a redis_store adopting the namespace's shard count
    auto ex = co_await asio::this_coro::executor;
    executor = ex;
    workers.emplace(
        ex, task_group_options{.max_in_flight = 0, .on_failure = failure_policy::collect_errors});
    slot_freed = notifier(ex);
    shards.clear();
    shards.resize(tasks.shards());
    for (auto& s : shards) {
      s.timer = std::make_unique<asio::steady_timer>(ex);
      s.acks_pending = notifier(ex);
    }
    running = true;
    stopping = false;
    finishing = false;

    // Acks and renewals outlive the claim loops: they go on while the runs drain.
    task_group renewers(ex);
    task_group ackers(ex);
    task_group loops(ex);
    std::exception_ptr ended_by;
    try {
      for (unsigned s = 0; s < shards.size(); ++s) {
        co_await renewers.spawn(renewer(s));
        co_await ackers.spawn(acker(s));
      }
      for (unsigned s = 0; s < shards.size(); ++s) {
        co_await loops.spawn(shard_loop(s));
      }
      co_await loops.spawn(watcher());
      co_await loops.join();
    } catch (...) {
      ended_by = std::current_exception();
    }
    // Stopping: the claim loops are finished (join waits for them even when cancelled). Let
    // the runs in flight finish (their leases still renewed), then acknowledge them.
    co_await asio::this_coro::reset_cancellation_state();
    running = false;
    stopping = true;
    wake_store_sleeps();
    if (!co_await workers->join_for(options.drain_timeout)) {
      CORVO_LOG(warning, "scheduler") << active
                                      << " task(s) still running after the drain timeout; "
                                         "cancelling and handing them back";
      cut_every_run(cut_reason::stop);
      if (!co_await workers->join_for(options.drain_timeout)) {
        workers->cancel();  // hand-backs stuck on a hung store
        co_await join_quietly(*workers);
      }
    }
    renewers.cancel();
    co_await join_quietly(renewers);
    finishing = true;
    for (auto& s : shards) {
      s.acks_pending->cancel();
    }
    wake_store_sleeps();
    if (!co_await ackers.join_for(options.drain_timeout)) {
      ackers.cancel();
    }
    co_await join_quietly(ackers);
    if (acks_waiting()) {
      CORVO_LOG(error, "scheduler") << "could not acknowledge every finished task before "
                                       "stopping; they run again when their leases expire";
    }
    if (ended_by) {
      std::rethrow_exception(ended_by);
    }
  }
};

type_limits limits_of(const std::map<std::string, type_policy, std::less<>>& types) {
  type_limits out;
  for (const auto& [type, policy] : types) {
    if (policy.concurrency || policy.rate) {
      out.emplace(type, type_limit{policy.concurrency, policy.rate});
    }
  }
  return out;
}

dispatcher::dispatcher(store& tasks, sink& out, dispatcher_options options)
    : impl_(std::make_unique<impl>(tasks, out, std::move(options))) {
  if (impl_->options.max_in_flight == 0 || impl_->options.claim_batch == 0) {
    throw std::invalid_argument("dispatcher: max_in_flight and claim_batch must be at least 1");
  }
}

dispatcher::~dispatcher() = default;

asio::awaitable<void> dispatcher::run() {
  co_await impl_->run();
}

void dispatcher::wake(unsigned shard) {
  impl_->wake(shard);
}

void dispatcher::on_start(start_observer observer) {
  impl_->observers.push_back(std::move(observer));
}

const dispatcher_stats& dispatcher::stats() const noexcept {
  return impl_->stats;
}

const dispatcher_options& dispatcher::options() const noexcept {
  return impl_->options;
}

}  // namespace corvo::schedule
