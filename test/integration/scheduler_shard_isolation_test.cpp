// One shard whose store calls hang (its Redis master SIGSTOPped) must not hold up the
// others: claims, acks, lease renewals and in-flight slots of the healthy shards go on.
// A store wrapper delegates to a memory_store and parks every call on a chosen shard until
// the test releases it.
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/value_to.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <map>
#include <set>

#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using namespace corvo::schedule;

namespace {

// Delegates to a memory_store; calls on `hung_shard` wait while their kind is hung.
class hanging_store final : public store {
 public:
  hanging_store(memory_store& inner, unsigned hung_shard)
      : inner_(inner), shard_(hung_shard), gate_(inner.get_executor()) {
    gate_.expires_at(asio::steady_timer::time_point::max());
  }

  bool hang_claims = false;
  bool hang_others = false;  // ack, nack, extend
  int parked = 0;            // calls waiting now

  void release() {
    hang_claims = hang_others = false;
    gate_.cancel();
  }

  unsigned shards() const noexcept override { return inner_.shards(); }
  unsigned shard_of(std::string_view id) const noexcept override { return inner_.shard_of(id); }
  asio::awaitable<void> schedule(task t) override { co_await inner_.schedule(std::move(t)); }
  asio::awaitable<bool> schedule_if_absent(task t) override {
    co_return co_await inner_.schedule_if_absent(std::move(t));
  }
  asio::awaitable<dedup_outcome> schedule_deduplicated(task t, dedup_options options) override {
    co_return co_await inner_.schedule_deduplicated(std::move(t), options);
  }
  asio::awaitable<std::optional<task>> get(std::string id) override {
    co_return co_await inner_.get(std::move(id));
  }
  asio::awaitable<std::vector<task>> browse(std::size_t offset, std::size_t limit) override {
    co_return co_await inner_.browse(offset, limit);
  }
  asio::awaitable<bool> cancel(std::string id) override {
    co_return co_await inner_.cancel(std::move(id));
  }
  asio::awaitable<bool> reschedule(std::string id, time_point due) override {
    co_return co_await inner_.reschedule(std::move(id), due);
  }
  asio::awaitable<store_stats> stats() override { co_return co_await inner_.stats(); }
  asio::awaitable<claim_result> claim(unsigned shard, std::size_t limit,
                                      std::chrono::milliseconds lease) override {
    co_await park(shard, true);
    co_return co_await inner_.claim(shard, limit, lease);
  }
  asio::awaitable<std::size_t> ack(unsigned shard, std::vector<completion> done) override {
    co_await park(shard, false);
    co_return co_await inner_.ack(shard, std::move(done));
  }
  asio::awaitable<bool> nack(unsigned shard, failure failed) override {
    co_await park(shard, false);
    co_return co_await inner_.nack(shard, std::move(failed));
  }
  asio::awaitable<std::vector<bool>> extend(unsigned shard, std::vector<lease_ref> leases,
                                            std::chrono::milliseconds lease) override {
    co_await park(shard, false);
    co_return co_await inner_.extend(shard, std::move(leases), lease);
  }
  asio::awaitable<void> pause(std::string type) override { co_await inner_.pause(std::move(type)); }
  asio::awaitable<void> resume(std::string type) override {
    co_await inner_.resume(std::move(type));
  }
  asio::awaitable<pause_state> paused() override { co_return co_await inner_.paused(); }
  asio::awaitable<std::vector<task>> dead_letters(std::size_t offset, std::size_t limit) override {
    co_return co_await inner_.dead_letters(offset, limit);
  }
  asio::awaitable<bool> replay(std::string id) override {
    co_return co_await inner_.replay(std::move(id));
  }
  asio::awaitable<std::size_t> purge(std::string id) override {
    co_return co_await inner_.purge(std::move(id));
  }
  asio::awaitable<void> watch_wakes(std::function<void(unsigned shard)> on_wake) override {
    co_await inner_.watch_wakes(std::move(on_wake));
  }

 private:
  asio::awaitable<void> park(unsigned shard, bool is_claim) {
    ++parked;
    while (shard == shard_ && (is_claim ? hang_claims : hang_others)) {
      boost::system::error_code ec;
      co_await gate_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      const auto cs = co_await asio::this_coro::cancellation_state;
      if (cs.cancelled() != asio::cancellation_type::none) {
        --parked;
        throw boost::system::system_error(asio::error::operation_aborted);
      }
    }
    --parked;
    if (gate_.expiry() != asio::steady_timer::time_point::max()) {
      gate_.expires_at(asio::steady_timer::time_point::max());
    }
  }

  memory_store& inner_;
  unsigned shard_;
  asio::steady_timer gate_;
};

struct tracker {
  std::map<std::string, int> runs, finished, cancelled;
};

asio::awaitable<void> timed_run(tracker& k, const claimed_task& t) {
  ++k.runs[t.work.id];
  int ms = 1;
  if (const auto* o = t.work.payload.if_object(); o != nullptr && o->contains("ms")) {
    ms = json::value_to<int>(o->at("ms"));
  }
  std::exception_ptr failed;
  try {
    co_await corvo::sleep_for(std::chrono::milliseconds(ms));
  } catch (...) {
    failed = std::current_exception();
  }
  if (failed) {
    if (corvo::is_operation_aborted(failed))
      ++k.cancelled[t.work.id];
    std::rethrow_exception(failed);
  }
  ++k.finished[t.work.id];
}

struct timed {
  tracker* k;
  asio::awaitable<void> operator()(const claimed_task& t) const { return timed_run(*k, t); }
};

task make_task(std::string id, int ms) {
  task t;
  t.id = std::move(id);
  t.type = "timed";
  t.due = now();
  json::object o;
  o["ms"] = ms;
  t.payload = std::move(o);
  return t;
}

template <class Done>
asio::awaitable<bool> wait_until(Done done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline)
      co_return false;
    co_await corvo::sleep_for(2ms);
  }
  co_return true;
}

asio::awaitable<void> run_dispatcher(dispatcher& d) {
  co_await d.run();
}

// Tasks acknowledged: gone from the (inner) store.
asio::awaitable<std::size_t> count_acked(memory_store& s, std::vector<std::string> ids) {
  std::size_t gone = 0;
  for (const auto& id : ids) {
    if (!co_await s.get(id))
      ++gone;
  }
  co_return gone;
}

struct isolation_outcome {
  bool held_running = false;
  std::size_t healthy_acked_phase1 = 0, healthy_acked_phase2 = 0;
  bool held_cut = false;
  bool all_done_after_release = false;
  std::vector<std::string> healthy, hung_ids;
  std::string held;
  dispatcher_stats stats;
};

std::vector<std::string> ids_of_shard(const store& s, unsigned shard, const std::string& prefix,
                                      std::size_t count) {
  std::vector<std::string> ids;
  for (int i = 0; ids.size() < count; ++i) {
    auto id = prefix + std::to_string(i);
    if (s.shard_of(id) == shard)
      ids.push_back(std::move(id));
  }
  return ids;
}

asio::awaitable<void> schedule_ids(store& s, const std::vector<std::string>& ids, int ms) {
  for (const auto& id : ids) {
    co_await s.schedule(make_task(id, ms));
  }
}

asio::awaitable<isolation_outcome> scenario(memory_store& inner, hanging_store& s, tracker& k) {
  handler_registry handlers;
  handlers.on_task("timed", timed{&k});
  direct_sink sink(handlers);
  dispatcher_options o;
  o.max_in_flight = 4;
  o.claim_batch = 4;
  o.lease = 600ms;
  o.max_sleep = 50ms;
  o.retry_backoff = {5ms, 20ms};
  o.drain_timeout = 2000ms;
  dispatcher d(s, sink, o);
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_dispatcher(d));
  isolation_outcome out;

  // A long run on shard 0, then shard 0's acks, nacks and renewals hang.
  const auto held = ids_of_shard(s, 0, "held-", 1).front();
  co_await s.schedule(make_task(held, 1500));
  out.held_running = co_await wait_until([&] { return k.runs[held] == 1; }, 3s);
  s.hang_others = true;
  const auto quick0 = ids_of_shard(s, 0, "q0-", 3);
  co_await schedule_ids(s, quick0, 1);  // finish at once; their acks hang
  BOOST_REQUIRE(co_await wait_until(
      [&] { return k.finished[quick0[0]] + k.finished[quick0[1]] + k.finished[quick0[2]] == 3; },
      3s));
  std::vector<std::string> phase1;
  for (unsigned shard = 1; shard < 4; ++shard) {
    for (auto& id : ids_of_shard(s, shard, "a" + std::to_string(shard) + "-", 10)) {
      phase1.push_back(std::move(id));
    }
  }
  co_await schedule_ids(s, phase1, 5);
  co_await wait_until(
      [&] {
        int done = 0;
        for (const auto& id : phase1)
          done += k.finished[id];
        return done == static_cast<int>(phase1.size());
      },
      3s);
  // Their acks went through although shard 0's acker is stuck.
  for (int i = 0; i < 200; ++i) {
    out.healthy_acked_phase1 = co_await count_acked(inner, phase1);
    if (out.healthy_acked_phase1 == phase1.size())
      break;
    co_await corvo::sleep_for(5ms);
  }

  // Now shard 0's claims hang too (holding whatever slots they reserved).
  s.hang_claims = true;
  co_await s.schedule(make_task(ids_of_shard(s, 0, "q0b-", 1).front(), 1));  // wakes shard 0
  co_await corvo::sleep_for(0ms);
  std::vector<std::string> phase2;
  for (unsigned shard = 1; shard < 4; ++shard) {
    for (auto& id : ids_of_shard(s, shard, "b" + std::to_string(shard) + "-", 15)) {
      phase2.push_back(std::move(id));
    }
  }
  co_await schedule_ids(s, phase2, 20);
  for (int i = 0; i < 1000; ++i) {
    out.healthy_acked_phase2 = co_await count_acked(inner, phase2);
    if (out.healthy_acked_phase2 == phase2.size())
      break;
    co_await corvo::sleep_for(5ms);
  }
  // The held run's lease could not be renewed: it is cut once the lease has run out here.
  out.held_cut = co_await wait_until([&] { return k.cancelled[held] == 1; }, 2s);

  // Release shard 0: everything left there runs.
  s.release();
  out.hung_ids = quick0;
  out.hung_ids.push_back(ids_of_shard(s, 0, "q0b-", 1).front());
  out.hung_ids.push_back(held);
  out.held = held;
  for (int i = 0; i < 1000; ++i) {
    if (co_await count_acked(inner, out.hung_ids) == out.hung_ids.size()) {
      out.all_done_after_release = true;
      break;
    }
    co_await corvo::sleep_for(5ms);
  }
  out.healthy = phase1;
  out.healthy.insert(out.healthy.end(), phase2.begin(), phase2.end());
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
  out.stats = d.stats();
  co_return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_hung_shard_does_not_stall_claims_acks_or_slots_of_the_others) {
  asio::io_context ctx;
  memory_store inner(ctx.get_executor(), 4);
  hanging_store s(inner, 0);
  tracker k;
  const auto out = corvo::test::run(ctx, scenario(inner, s, k));
  BOOST_TEST(out.held_running);
  BOOST_TEST(out.healthy_acked_phase1 == 30u);
  BOOST_TEST(out.healthy_acked_phase2 == 45u);
  BOOST_TEST(out.held_cut);
  BOOST_TEST(out.all_done_after_release);
  for (const auto& id : out.healthy) {
    BOOST_TEST(k.runs[id] == 1, id << " ran " << k.runs[id] << " times");
  }
  // The hung shard's runs: `held` was cut and runs again once its lease expired in the
  // store; a quick one finished while its ack hung may run again (its lease expired too).
  BOOST_TEST(k.runs[out.held] == 2);
  for (const auto& id : out.hung_ids) {
    BOOST_TEST(k.finished[id] >= 1, id);
    BOOST_TEST(k.runs[id] <= 2, id << " ran " << k.runs[id] << " times");
  }
}
