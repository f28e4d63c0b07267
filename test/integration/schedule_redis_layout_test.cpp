// The Redis store's records and leases as stored (redis_scripts.hpp).
//
// Leases (leased_key): a claim writes the member '<id> <token>' to the shard's leased set and
// the token to the record's options line, and nothing to the `inflight` set or `lease` hash
// that held leases before; an ack batch whose tokens are all current removes them in one
// call, and one holding a stale token acks exactly the current ones; leases taken by an
// older version (inflight + lease, written here by hand as those scripts wrote them) are
// still acked, nacked, extended, cancelled and recovered when they expire; members that name no
// lease are dropped.
//
// Records (encode_waiting_record): a waiting task whose occurrence is its due time is stored
// without the occurrence line; the claim writes it back, so a retry keeps the occurrence.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/detail/record.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <optional>
#include <string>
#include <vector>

#include "support/schedule_harness.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;

namespace {

/// One store of one shard on a fresh namespace of the executable's shared server.
using harness = corvo::test::redis_schedule_harness<1>;

/// The shard's keys (redis_store::keys_of: 1 tasks, 2 inflight, 3 lease).
std::string tasks_key(const harness& h) {
  return h.store.keys_of(0).at(1);
}
std::string inflight_key(const harness& h) {
  return h.store.keys_of(0).at(2);
}
std::string lease_key(const harness& h) {
  return h.store.keys_of(0).at(3);
}

sched::task make_task(std::string id, sched::time_point due) {
  sched::task t;
  t.id = std::move(id);
  t.type = "email";
  t.payload = 1;
  t.due = due;
  t.max_attempts = 3;
  return t;
}

// Builders of the store's argument types (GCC 12 mishandles braced aggregates holding
// strings inside coroutines).
sched::completion completion_of(std::string id, std::string token) {
  sched::completion c;
  c.id = std::move(id);
  c.token = std::move(token);
  return c;
}

sched::failure failing(std::string id, std::string token, std::string error) {
  sched::failure f;
  f.id = std::move(id);
  f.token = std::move(token);
  f.error = std::move(error);
  f.retry_in = std::chrono::microseconds(0);
  return f;
}

std::vector<sched::lease_ref> lease_refs(std::string id, std::string token) {
  std::vector<sched::lease_ref> out(1);
  out[0].id = std::move(id);
  out[0].token = std::move(token);
  return out;
}

// `command` (name, then arguments) as one request.
redis::request request_of(const std::vector<std::string>& command) {
  redis::request req;
  req.push(command.front(), std::vector<std::string>(command.begin() + 1, command.end()));
  return req;
}

template <class T>
asio::awaitable<T> reply_to(redis::client& conn, redis::request req) {
  redis::response<T> resp;
  co_await conn.exec(req, resp);
  co_return std::get<0>(resp).value();
}

// One command's reply, as a number, an optional text or a list (not coroutines themselves:
// the command's words are gathered before the coroutine starts, GCC 12 mishandling braced
// temporaries inside coroutines).
template <class... Words>
asio::awaitable<long long> integer(redis::client& conn, const Words&... words) {
  return reply_to<long long>(conn, request_of({std::string(words)...}));
}

template <class... Words>
asio::awaitable<std::optional<std::string>> text(redis::client& conn, const Words&... words) {
  return reply_to<std::optional<std::string>>(conn, request_of({std::string(words)...}));
}

template <class... Words>
asio::awaitable<std::vector<std::string>> strings(redis::client& conn, const Words&... words) {
  return reply_to<std::vector<std::string>>(conn, request_of({std::string(words)...}));
}

const char* const abc[] = {"a", "b", "c"};

std::string token_of(const sched::claim_result& claimed, const std::string& id) {
  for (const auto& c : claimed.tasks) {
    if (c.work.id == id) {
      return c.token;
    }
  }
  BOOST_FAIL("task " << id << " was not claimed");
  return {};
}

asio::awaitable<void> a_claim_writes_the_leased_set_and_the_record(harness& h) {
  auto& store = h.store;
  const auto t0 = sched::now() - 1s;
  co_await store.schedule(make_task("a", t0));
  co_await store.schedule(make_task("b", t0));
  const auto claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 2u);
  const auto token_a = token_of(claimed, "a");
  const auto token_b = token_of(claimed, "b");
  const auto leased = h.store.leased_key(0);

  // The leased set holds exactly the two leases; the older keys are not written.
  auto members = co_await strings(h.conn, "ZRANGE", leased, "0", "-1");
  std::sort(members.begin(), members.end());
  std::vector<std::string> expected;
  expected.push_back("a " + token_a);
  expected.push_back("b " + token_b);
  BOOST_TEST(members == expected, boost::test_tools::per_element());
  BOOST_TEST(co_await integer(h.conn, "EXISTS", inflight_key(h), lease_key(h)) == 0);
  const auto deadline = co_await text(h.conn, "ZSCORE", leased, "a " + token_a);
  BOOST_TEST_REQUIRE(deadline.has_value());
  const auto deadline_us = std::stoll(*deadline);
  const auto claimed_us = claimed.store_now.time_since_epoch().count();
  BOOST_TEST(deadline_us == claimed_us + 30'000'000);

  // The record carries the token and still decodes; the task reads as in flight.
  const auto record = co_await text(h.conn, "HGET", tasks_key(h), "a");
  BOOST_TEST_REQUIRE(record.has_value());
  BOOST_TEST(sched::detail::lease_token_of(*record) == token_a);
  const auto got = co_await store.get("a");
  BOOST_TEST_REQUIRE(got.has_value());
  BOOST_TEST((got->state == sched::task_state::in_flight));
  BOOST_TEST(got->attempts == 1);
  BOOST_TEST((claimed.tasks[0].work.type == "email"));
  const auto stats = co_await store.stats();
  BOOST_TEST(stats.in_flight == 2u);
  const auto listed = co_await store.in_flight(0, 10);
  std::vector<std::string> listed_ids;
  for (const auto& t : listed) {
    listed_ids.push_back(t.id);
  }
  std::sort(listed_ids.begin(), listed_ids.end());
  std::vector<std::string> ab;
  ab.push_back("a");
  ab.push_back("b");
  BOOST_TEST(listed_ids == ab, boost::test_tools::per_element());

  // An ack removes the member and the record; a nack removes the member and the token.
  std::vector<sched::completion> done;
  done.push_back(completion_of("a", token_a));
  BOOST_TEST(co_await store.ack(0, std::move(done)) == 1u);
  BOOST_TEST(!(co_await text(h.conn, "HGET", tasks_key(h), "a")).has_value());
  BOOST_TEST(co_await store.nack(0, failing("b", token_b, "boom")));
  BOOST_TEST(co_await integer(h.conn, "EXISTS", leased) == 0);
  const auto b_record = co_await text(h.conn, "HGET", tasks_key(h), "b");
  BOOST_TEST_REQUIRE(b_record.has_value());
  BOOST_TEST(sched::detail::lease_token_of(*b_record).empty());
  const auto b = co_await store.get("b");
  BOOST_TEST((b->state == sched::task_state::scheduled));
  BOOST_TEST(b->last_error == "boom");
  BOOST_TEST(b->attempts == 1);
}

asio::awaitable<void> a_batch_with_a_stale_token_acks_exactly_the_current_ones(harness& h) {
  auto& store = h.store;
  const auto t0 = sched::now() - 1s;
  for (const char* id : abc) {
    co_await store.schedule(make_task(id, t0));
  }
  const auto claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 3u);
  const auto token_a = token_of(claimed, "a");
  const auto token_b = token_of(claimed, "b");
  const auto token_c = token_of(claimed, "c");
  // a: a token that was never issued; b: current, twice; c: current.
  std::vector<sched::completion> batch;
  batch.push_back(completion_of("a", "1.deadbeef"));
  batch.push_back(completion_of("b", token_b));
  batch.push_back(completion_of("b", token_b));
  batch.push_back(completion_of("c", token_c));
  BOOST_TEST(co_await store.ack(0, std::move(batch)) == 2u);
  const auto a = co_await store.get("a");
  BOOST_TEST_REQUIRE(a.has_value());
  BOOST_TEST((a->state == sched::task_state::in_flight));
  BOOST_TEST(!(co_await store.get("b")).has_value());
  BOOST_TEST(!(co_await store.get("c")).has_value());
  const auto members = co_await strings(h.conn, "ZRANGE", store.leased_key(0), "0", "-1");
  std::vector<std::string> only_a;
  only_a.push_back("a " + token_a);
  BOOST_TEST(members == only_a, boost::test_tools::per_element());
  // A rescheduled task's old token is stale too, and its new schedule is untouched.
  co_await store.schedule(make_task("a", t0 + 1h));
  std::vector<sched::completion> stale;
  stale.push_back(completion_of("a", token_a));
  BOOST_TEST(co_await store.ack(0, std::move(stale)) == 0u);
  const auto again = co_await store.get("a");
  BOOST_TEST((again->state == sched::task_state::scheduled));
  BOOST_TEST(co_await integer(h.conn, "EXISTS", store.leased_key(0)) == 0);
}

// Writes task `id` as leased by an older version: its record (attempts 1), its id in the
// inflight set with `deadline_us`, its token in the lease hash.
asio::awaitable<void> lease_the_old_way(harness& h, std::string id, std::string token,
                                        long long deadline_us) {
  auto t = make_task(id, sched::now());
  t.attempts = 1;
  t.occurrence = t.due;
  redis::request req;
  req.push("HSET", tasks_key(h), id, sched::detail::encode_record(t));
  req.push("ZADD", inflight_key(h), std::to_string(deadline_us), id);
  req.push("HSET", lease_key(h), id, token);
  co_await h.conn.exec(req);
}

asio::awaitable<void> leases_of_an_older_version_keep_working(harness& h) {
  auto& store = h.store;
  const auto later = (sched::now() + 1h).time_since_epoch().count();
  co_await lease_the_old_way(h, "acked", "7.aa", later);
  co_await lease_the_old_way(h, "nacked", "8.bb", later);
  co_await lease_the_old_way(h, "cancelled", "9.cc", later);
  co_await lease_the_old_way(h, "expired", "10.dd", (sched::now() - 1s).time_since_epoch().count());

  BOOST_TEST(((co_await store.get("acked"))->state == sched::task_state::in_flight));
  BOOST_TEST((co_await store.stats()).in_flight == 4u);
  std::vector<sched::completion> wrong;
  wrong.push_back(completion_of("acked", "7.zz"));
  BOOST_TEST(co_await store.ack(0, std::move(wrong)) == 0u);
  std::vector<sched::completion> right;
  right.push_back(completion_of("acked", "7.aa"));
  BOOST_TEST(co_await store.ack(0, std::move(right)) == 1u);
  BOOST_TEST(!(co_await store.get("acked")).has_value());

  const auto extended = co_await store.extend(0, lease_refs("nacked", "8.bb"), 60s);
  BOOST_TEST_REQUIRE(extended.size() == 1u);
  BOOST_TEST(extended[0]);
  const auto stale_extend = co_await store.extend(0, lease_refs("nacked", "8.xx"), 60s);
  BOOST_TEST_REQUIRE(stale_extend.size() == 1u);
  BOOST_TEST(!stale_extend[0]);
  BOOST_TEST(co_await store.nack(0, failing("nacked", "8.bb", "old boom")));
  const auto nacked = co_await store.get("nacked");
  BOOST_TEST((nacked->state == sched::task_state::scheduled));
  BOOST_TEST(nacked->last_error == "old boom");

  BOOST_TEST(co_await store.cancel("cancelled"));
  BOOST_TEST(!(co_await store.get("cancelled")).has_value());

  // The expired lease's task is due again at the next claim, which takes it (attempt 2), and
  // the nacked task (retry now).
  const auto claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 2u);
  for (const auto& c : claimed.tasks) {
    if (c.work.id == "expired") {
      BOOST_TEST(c.work.attempts == 2);
      BOOST_TEST(c.work.last_error == "lease expired 1 times (worker died or hung)");
    } else {
      BOOST_TEST(c.work.id == "nacked");
      BOOST_TEST(c.work.attempts == 2);
    }
  }
  // Nothing of the older layout is left; the new leases are in the leased set.
  BOOST_TEST(co_await integer(h.conn, "EXISTS", inflight_key(h), lease_key(h)) == 0);
  BOOST_TEST(co_await integer(h.conn, "ZCARD", store.leased_key(0)) == 2);
}

std::size_t newlines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

asio::awaitable<void> the_occurrence_line_is_left_out_until_the_claim(harness& h) {
  auto& store = h.store;
  const auto due = sched::now() - 1s;
  co_await store.schedule(make_task("x", due));
  co_await store.schedule(make_task("moved", due + 1h));
  BOOST_TEST(co_await store.reschedule("moved", due + 2h));
  // Five header lines and the payload: no occurrence line while it is the due time.
  const auto waiting = co_await text(h.conn, "HGET", tasks_key(h), "x");
  BOOST_TEST_REQUIRE(waiting.has_value());
  BOOST_TEST(newlines(*waiting) == 5u);
  auto as_scheduled = make_task("x", due);
  as_scheduled.occurrence = due;
  BOOST_TEST(*waiting == sched::detail::encode_waiting_record(as_scheduled));
  const auto listed = co_await store.get("x");
  BOOST_TEST((listed->occurrence == due));
  // A reschedule writes it (the occurrence moves with the due time).
  const auto moved = co_await text(h.conn, "HGET", tasks_key(h), "moved");
  BOOST_TEST(newlines(moved.value_or("")) == 6u);

  const auto claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 1u);
  BOOST_TEST((claimed.tasks[0].work.occurrence == due));
  const auto leased = co_await text(h.conn, "HGET", tasks_key(h), "x");
  BOOST_TEST_REQUIRE(leased.has_value());
  BOOST_TEST(newlines(*leased) == 6u);
  BOOST_TEST(leased->find("\n" + std::to_string(due.time_since_epoch().count()) + "\n") !=
             std::string::npos);
  // A retry moves the due time, not the occurrence.
  BOOST_TEST(co_await store.nack(0, failing("x", claimed.tasks[0].token, "again")));
  const auto retried = co_await store.get("x");
  BOOST_TEST_REQUIRE(retried.has_value());
  BOOST_TEST((retried->state == sched::task_state::scheduled));
  BOOST_TEST((retried->due > due + 500ms));
  BOOST_TEST((retried->occurrence == due));
  const auto again = co_await store.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(again.tasks.size() == 1u);
  BOOST_TEST((again.tasks[0].work.occurrence == due));
  BOOST_TEST(again.tasks[0].work.attempts == 2);
}

// Members of the leased set that name no lease (no token, no record, or a token the record
// does not carry) are dropped when they expire; the waiting task they name is left alone and
// claimed once.
asio::awaitable<void> malformed_leased_members_are_dropped(harness& h) {
  auto& store = h.store;
  co_await store.schedule(make_task("w", sched::now() - 1s));
  const auto leased = store.leased_key(0);
  const auto past = std::to_string((sched::now() - 1s).time_since_epoch().count());
  BOOST_TEST(co_await integer(h.conn, "ZADD", leased, past, "no-token-at-all", past, "ghost 1.ff",
                              past, "w 9.zz") == 3);
  const auto claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 1u);
  BOOST_TEST(claimed.tasks[0].work.id == "w");
  BOOST_TEST(claimed.tasks[0].work.attempts == 1);
  BOOST_TEST(claimed.tasks[0].work.last_error.empty());
  auto members = co_await strings(h.conn, "ZRANGE", leased, "0", "-1");
  std::vector<std::string> only_w;
  only_w.push_back("w " + claimed.tasks[0].token);
  BOOST_TEST(members == only_w, boost::test_tools::per_element());
}

}  // namespace

BOOST_AUTO_TEST_CASE(malformed_members_of_the_leased_set_are_dropped) {
  corvo::test::run_scenario<harness>(
      [](harness& h) { return malformed_leased_members_are_dropped(h); });
}

BOOST_AUTO_TEST_CASE(a_waiting_record_leaves_out_its_occurrence_and_the_claim_writes_it_back) {
  corvo::test::run_scenario<harness>(
      [](harness& h) { return the_occurrence_line_is_left_out_until_the_claim(h); });
}

BOOST_AUTO_TEST_CASE(a_claim_writes_the_leased_set_and_the_record_not_the_older_keys) {
  corvo::test::run_scenario<harness>(
      [](harness& h) { return a_claim_writes_the_leased_set_and_the_record(h); });
}

BOOST_AUTO_TEST_CASE(an_ack_batch_with_a_stale_token_acks_exactly_the_current_ones) {
  corvo::test::run_scenario<harness>(
      [](harness& h) { return a_batch_with_a_stale_token_acks_exactly_the_current_ones(h); });
}

BOOST_AUTO_TEST_CASE(leases_taken_by_an_older_version_are_acked_nacked_extended_and_expire) {
  corvo::test::run_scenario<harness>(
      [](harness& h) { return leases_of_an_older_version_keep_working(h); });
}
