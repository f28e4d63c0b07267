#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/dispatcher.hpp>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cmath>
#include <map>
#include <random>

namespace corvo::schedule {
namespace {

using steady = std::chrono::steady_clock;
using boost::system::error_code;


}  // namespace

struct dispatcher::impl {
  impl(store& s, sink& k, dispatcher_options o) : tasks(s), out(k), options(std::move(o)) {}

  struct running_task {
    std::string token;
    steady::time_point started;
  };

  struct shard_state {
    std::unique_ptr<asio::steady_timer> timer;
    bool woken = false;
    std::vector<completion> acks;
    // The store's clock at the last claim, and ours then: the store's now, estimated.
    time_point store_now{};
    steady::time_point claimed_at{};
  };

  store& tasks;
  sink& out;
  dispatcher_options options;
  dispatcher_stats stats;
  start_observer observer;

  bool running = false;
  std::optional<asio::any_io_executor> executor;
  std::optional<task_group> workers;
  std::vector<shard_state> shards;
  std::size_t reserved = 0;  // slots promised to claims in progress
  // Runs started and not yet finished. Counted here, not by workers->in_flight(): a run
  // announces its free slot before the task group sees the child finish, and waiters that
  // woke on that announcement must already see the slot free (else the wake-up is lost).
  std::size_t active = 0;
  // Timers used as broadcast notifiers: expiry at max, woken by cancel().
  std::unique_ptr<asio::steady_timer> slot_freed;
  std::unique_ptr<asio::steady_timer> acks_pending;
  // (shard, id) -> the run holding the task's lease here. By id, not token: a token is only
  // unique per claim, and when a lease is lost and this process claims the task again, the
  // newer run replaces the older one (whose lease is gone anyway).
  std::map<std::pair<unsigned, std::string>, running_task> in_flight;
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

  std::chrono::microseconds retry_delay(std::uint32_t attempts) {
    const auto& p = options.retry_backoff;
    double ceiling = static_cast<double>(p.initial.count()) *
                     std::pow(p.multiplier, attempts > 0 ? static_cast<double>(attempts - 1) : 0.0);
    ceiling = std::min(ceiling, static_cast<double>(p.max.count()));
    const double ms = p.jitter ? std::uniform_real_distribution<double>(0, ceiling)(random) : ceiling;
    return std::chrono::microseconds(static_cast<std::int64_t>(ms * 1000));
  }

  // ---- claiming ---------------------------------------------------------------------------

  asio::awaitable<void> wait_for_free_slot() {
    while (active + reserved >= options.max_in_flight) {
      co_await wait(*slot_freed);
    }
  }

  asio::awaitable<void> shard_loop(unsigned s) {
    backoff store_delays(options.store_retry);
    auto& state = shards[s];
    for (;;) {
      // Availability is checked after the wait for a slot too: that wait can be long (sends
      // stuck while Kafka is down), and the sink may have become unavailable meanwhile.
      while (!out.available() || active + reserved >= options.max_in_flight) {
        if (!out.available()) {
          state.timer->expires_after(std::chrono::milliseconds(100));
          co_await wait(*state.timer);
        } else {
          co_await wait_for_free_slot();
        }
      }
      const std::size_t limit =
          std::min(options.claim_batch, options.max_in_flight - active - reserved);
      reserved += limit;
      state.woken = false;
      std::exception_ptr failed;
      claim_result claimed;
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
      state.store_now = claimed.store_now;
      state.claimed_at = claimed_at;
      ++stats.claims;
      stats.claimed += claimed.tasks.size();
      const bool backlog = claimed.tasks.size() == limit && limit > 0;
      for (auto& t : claimed.tasks) {
        ++active;
        co_await workers->spawn(run_task(std::move(t)));
      }
      if (backlog || state.woken) {
        continue;
      }
      // Sleep until the store's next due time (or lease expiry), translated from the store's
      // clock to ours, capped by max_sleep.
      auto deadline = claimed_at + options.max_sleep;
      for (const auto& next : {claimed.next_due, claimed.next_lease_expiry}) {
        if (next) {
          const auto wait_for = std::chrono::duration_cast<steady::duration>(*next - claimed.store_now);
          deadline = std::min(deadline, claimed_at + std::max(wait_for, steady::duration::zero()));
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
    const auto store_now =
        shard.store_now +
        std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - shard.claimed_at);
    try {
      return next_run_after(t.work.repeat, t.work.occurrence, store_now);
    } catch (const std::exception& e) {
      CORVO_LOG(error, "scheduler") << "task " << t.work.id << ": cannot compute its next run ("
                                    << e.what() << "); it will not recur";
      return std::nullopt;
    }
  }

  asio::awaitable<void> run_task(claimed_task t) {
    const auto key = std::make_pair(t.shard, t.work.id);
    in_flight.insert_or_assign(key, running_task{t.token, steady::now()});
    if (observer) {
      observer(t);
    }
    std::exception_ptr error;
    std::string reason;
    bool permanent = false;
    if (t.work.type.empty()) {
      permanent = true;
      reason = t.work.last_error.empty() ? "task record has no type" : t.work.last_error;
    } else {
      try {
        co_await out.deliver(t);
      } catch (const permanent_error& e) {
        permanent = true;
        reason = e.what();
      } catch (...) {
        error = std::current_exception();
        reason = corvo::describe(error);
      }
    }
    if (const auto it = in_flight.find(key); it != in_flight.end() && it->second.token == t.token) {
      in_flight.erase(it);
    }
    --active;
    slot_freed->cancel();

    if (!permanent && !error) {
      shards[t.shard].acks.push_back({t.work.id, t.token, next_run_of(t)});
      acks_pending->cancel();
      co_return;
    }
    // A run cut short by our own stop is handed back, not counted as a failure.
    const bool stopped = error && is_operation_aborted(error);
    if (stopped) {
      co_await asio::this_coro::reset_cancellation_state();
    }
    const bool dead = permanent || (!stopped && t.work.attempts >= t.work.max_attempts);
    failure_outcome(t, reason, dead, stopped);
    failure f{t.work.id, t.token, reason, std::nullopt};
    if (!dead) {
      f.retry_in = stopped ? std::chrono::microseconds(0) : retry_delay(t.work.attempts);
    }
    try {
      if (!co_await tasks.nack(t.shard, std::move(f))) {
        ++stats.stale;
      }
    } catch (...) {
      ++stats.store_errors;
      CORVO_LOG(warning, "scheduler") << "task " << t.work.id << ": could not record the failure ("
                                      << corvo::describe(std::current_exception())
                                      << "); it runs again when its lease expires";
    }
  }

  void failure_outcome(const claimed_task& t, const std::string& reason, bool dead, bool stopped) {
    if (stopped) {
      return;
    }
    if (dead) {
      ++stats.dead_lettered;
      CORVO_LOG(warning, "scheduler") << "task " << t.work.id << " (" << t.work.type
                                      << ") dead-lettered after " << t.work.attempts
                                      << " attempt(s): " << reason;
    } else {
      ++stats.retried;
      CORVO_LOG(info, "scheduler") << "task " << t.work.id << " (" << t.work.type << ") attempt "
                                   << t.work.attempts << " failed, will retry: " << reason;
    }
  }

  // ---- acknowledging ------------------------------------------------------------------------

  // Sends every pending ack, one batch per shard; failed batches are kept for the next round.
  asio::awaitable<bool> flush_acks() {
    bool all_sent = true;
    for (unsigned s = 0; s < shards.size(); ++s) {
      if (shards[s].acks.empty()) {
        continue;
      }
      auto batch = std::exchange(shards[s].acks, {});
      const auto count = batch.size();
      std::exception_ptr failed;
      try {
        const auto acked = co_await tasks.ack(s, batch);
        stats.succeeded += acked;
        stats.stale += count - acked;
      } catch (...) {
        failed = std::current_exception();
      }
      if (failed) {
        if (is_operation_aborted(failed)) {
          shards[s].acks.insert(shards[s].acks.begin(), batch.begin(), batch.end());
          std::rethrow_exception(failed);
        }
        ++stats.store_errors;
        all_sent = false;
        CORVO_LOG(warning, "scheduler") << "ack of " << count << " task(s) on shard " << s
                                        << " failed: " << corvo::describe(failed) << "; retrying";
        shards[s].acks.insert(shards[s].acks.begin(), batch.begin(), batch.end());
      }
    }
    co_return all_sent;
  }

  bool acks_waiting() const {
    for (const auto& s : shards) {
      if (!s.acks.empty()) return true;
    }
    return false;
  }

  asio::awaitable<void> acker() {
    backoff delays(options.store_retry);
    for (;;) {
      if (!acks_waiting()) {
        co_await wait(*acks_pending);
        continue;
      }
      if (co_await flush_acks()) {
        delays.reset();
      } else {
        co_await sleep_for(delays.next());
      }
    }
  }

  // ---- leases -------------------------------------------------------------------------------

  asio::awaitable<void> extender() {
    const auto period = std::max<std::chrono::milliseconds>(options.lease / 3, std::chrono::milliseconds(1));
    for (;;) {
      co_await sleep_for(period);
      std::map<unsigned, std::vector<lease_ref>> due_for_renewal;
      const auto cutoff = steady::now() - period;
      for (const auto& [key, run] : in_flight) {
        if (run.started <= cutoff) {
          due_for_renewal[key.first].push_back({key.second, run.token});
        }
      }
      for (auto& [shard, leases] : due_for_renewal) {
        try {
          co_await tasks.extend(shard, std::move(leases), options.lease);
        } catch (...) {
          const auto failed = std::current_exception();
          if (is_operation_aborted(failed)) {
            throw;
          }
          ++stats.store_errors;
          CORVO_LOG(warning, "scheduler") << "lease extension failed: " << corvo::describe(failed);
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
      CORVO_LOG(warning, "scheduler") << "wake-up subscription ended: " << corvo::describe(failed)
                                      << "; re-subscribing";
      co_await sleep_for(delays.next());
    }
  }

  // ---- life -------------------------------------------------------------------------------

  asio::awaitable<void> run() {
    if (running) {
      throw std::logic_error("dispatcher::run() is already running");
    }
    co_await tasks.open();  // e.g. a redis_store adopting the namespace's shard count
    auto ex = co_await asio::this_coro::executor;
    executor = ex;
    workers.emplace(ex, task_group_options{.max_in_flight = 0,
                                           .on_failure = failure_policy::collect_errors});
    slot_freed = notifier(ex);
    acks_pending = notifier(ex);
    shards.clear();
    shards.resize(tasks.shards());
    for (auto& s : shards) {
      s.timer = std::make_unique<asio::steady_timer>(ex);
    }
    running = true;

    task_group loops(ex);
    std::exception_ptr ended_by;
    try {
      for (unsigned s = 0; s < shards.size(); ++s) {
        co_await loops.spawn(shard_loop(s));
      }
      co_await loops.spawn(acker());
      co_await loops.spawn(extender());
      co_await loops.spawn(watcher());
      co_await loops.join();
    } catch (...) {
      ended_by = std::current_exception();
    }
    // Stopping: the loops are finished (join waits for them even when cancelled). Let the
    // runs in flight finish, then acknowledge what finished.
    co_await asio::this_coro::reset_cancellation_state();
    running = false;
    if (!co_await workers->join_for(options.drain_timeout)) {
      CORVO_LOG(warning, "scheduler") << workers->in_flight()
                                      << " task(s) still running after the drain timeout; "
                                         "cancelling and handing them back";
      workers->cancel();
      co_await workers->join();
    }
    for (int attempt = 0; attempt < 3 && acks_waiting(); ++attempt) {
      if (!co_await flush_acks()) {
        co_await sleep_for(options.store_retry.initial);
      }
    }
    if (acks_waiting()) {
      CORVO_LOG(error, "scheduler") << "could not acknowledge every finished task before "
                                       "stopping; they run again when their leases expire";
    }
    if (ended_by) {
      std::rethrow_exception(ended_by);
    }
  }
};

dispatcher::dispatcher(store& tasks, sink& out, dispatcher_options options)
    : impl_(std::make_unique<impl>(tasks, out, std::move(options))) {
  if (impl_->options.max_in_flight == 0 || impl_->options.claim_batch == 0) {
    throw std::invalid_argument("dispatcher: max_in_flight and claim_batch must be at least 1");
  }
}

dispatcher::~dispatcher() = default;

asio::awaitable<void> dispatcher::run() { co_await impl_->run(); }

void dispatcher::wake(unsigned shard) { impl_->wake(shard); }

void dispatcher::on_start(start_observer observer) { impl_->observer = std::move(observer); }

const dispatcher_stats& dispatcher::stats() const noexcept { return impl_->stats; }

const dispatcher_options& dispatcher::options() const noexcept { return impl_->options; }

}  // namespace corvo::schedule
