// The Redis store's records and leases as stored (redis_scripts.hpp, the prelude's leases).
//
// Leases kept in their tokens (the default): a claim writes the member '<id> <token>' to the
// shard's leased set, the token being '<counter>.<nonce>.<due>', and leaves the record as it
// was; get, in_flight, nack and an expiry count the try and keep the occurrence from the
// token; a schedule or cancel of an id in flight finds its member by the id alone (ids that
// share a prefix or hold glob characters included).
// Leases written into the records (redis_store_options::compatible_leases): the claim also
// writes the try's attempts and the token into the record, as versions before did; either
// setting acks, nacks and recovers both kinds of lease (a rolling upgrade).
// Either way: nothing goes to the `inflight` set or `lease` hash that held leases before; an
// ack batch holding a stale token acks exactly the current ones; leases taken by an older
// version (inflight + lease, written here by hand as those scripts wrote them) are still
// acked, nacked, extended, cancelled and recovered when they expire; members that name no
// lease are dropped.
//
// Records (encode_waiting_record): a waiting task whose occurrence is its due time is stored
// without the occurrence line; a retry or an expiry writes it, so the occurrence stays.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/detail/record.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/redis_commands.hpp"
#include "support/schedule_builders.hpp"
#include "support/schedule_harness.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;

namespace {

using corvo::test::compact_tier;
/// One store of one shard on a fresh namespace of the executable's shared server, without
/// the compact tier (these cases read the due sets and the tasks hash).
using harness = corvo::test::redis_schedule_harness<1, false, compact_tier::off>;
/// The same with compatible_leases (leases written into the records).
using compatible_harness = corvo::test::redis_schedule_harness<1, true, compact_tier::off>;

/// The shard's keys (redis_store::keys_of: 1 tasks, 2 inflight, 3 lease).
template <class H>
std::string tasks_key(const H& h) {
  return h.store.keys_of(0).at(1);
}
template <class H>
std::string inflight_key(const H& h) {
  return h.store.keys_of(0).at(2);
}
template <class H>
std::string lease_key(const H& h) {
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

using corvo::test::completion_of;
using corvo::test::lease_refs;

// A failed run retried at once.
sched::failure failing(std::string id, std::string token, std::string error) {
  return corvo::test::failing(std::move(id), std::move(token), std::move(error),
                              std::chrono::microseconds(0));
}

using corvo::test::integer;
using corvo::test::strings;
using corvo::test::text;

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

std::vector<std::string> sorted_ids(const std::vector<sched::task>& tasks) {
  std::vector<std::string> ids;
  for (const auto& t : tasks) {
    ids.push_back(t.id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

asio::awaitable<void> a_claim_keeps_the_lease_in_its_token(harness& h) {
  auto& store = h.store;
  const auto t0 = sched::now() - 1s;
  co_await store.schedule(make_task("a", t0));
  co_await store.schedule(make_task("b", t0));
  const auto before = co_await text(h.conn, "HGET", tasks_key(h), "a");
  BOOST_TEST_REQUIRE(before.has_value());
  const auto claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 2u);
  const auto token_a = token_of(claimed, "a");
  const auto token_b = token_of(claimed, "b");
  const auto leased = h.store.leased_key(0);

  // The tokens are '<counter>.<nonce>.<due>' with the due time claimed; the claim took one
  // counter value for both.
  const auto due_us = t0.time_since_epoch().count();
  BOOST_TEST(sched::detail::token_due(token_a).value_or(-1) == due_us);
  BOOST_TEST(token_a == token_b);  // one claim, one counter value, the same due time
  for (const auto& c : claimed.tasks) {
    BOOST_TEST(c.work.attempts == 1);
    BOOST_TEST((c.work.occurrence == t0));
  }

  // The leased set holds exactly the two leases; the older keys are not written; the record
  // is as it was before the claim.
  auto members = co_await strings(h.conn, "ZRANGE", leased, "0", "-1");
  std::sort(members.begin(), members.end());
  std::vector<std::string> expected;
  expected.push_back("a " + token_a);
  expected.push_back("b " + token_b);
  BOOST_TEST(members == expected, boost::test_tools::per_element());
  BOOST_TEST(co_await integer(h.conn, "EXISTS", inflight_key(h), lease_key(h)) == 0);
  const auto deadline = co_await text(h.conn, "ZSCORE", leased, "a " + token_a);
  BOOST_TEST_REQUIRE(deadline.has_value());
  BOOST_TEST(std::stoll(*deadline) == claimed.store_now.time_since_epoch().count() + 30'000'000);
  BOOST_TEST((co_await text(h.conn, "HGET", tasks_key(h), "a")).value_or("-") == *before);

  // get and in_flight read the try from the token: in flight, attempt 1, the occurrence.
  const auto got = co_await store.get("a");
  BOOST_TEST_REQUIRE(got.has_value());
  BOOST_TEST((got->state == sched::task_state::in_flight));
  BOOST_TEST(got->attempts == 1);
  BOOST_TEST((got->occurrence == t0));
  BOOST_TEST((co_await store.stats()).in_flight == 2u);
  const auto listed = co_await store.in_flight(0, 10);
  std::vector<std::string> ab;
  ab.push_back("a");
  ab.push_back("b");
  BOOST_TEST(sorted_ids(listed) == ab, boost::test_tools::per_element());
  for (const auto& t : listed) {
    BOOST_TEST(t.attempts == 1);
    BOOST_TEST((t.occurrence == t0));
  }

  // An ack removes the member and the record. A nack removes the member and writes the try
  // into the record: attempt 1, its error, the occurrence line (the due time moves).
  std::vector<sched::completion> done;
  done.push_back(completion_of("a", token_a));
  BOOST_TEST(co_await store.ack(0, std::move(done)) == 1u);
  BOOST_TEST(!(co_await text(h.conn, "HGET", tasks_key(h), "a")).has_value());
  BOOST_TEST(co_await store.nack(0, failing("b", token_b, "boom")));
  BOOST_TEST(co_await integer(h.conn, "EXISTS", leased) == 0);
  auto as_failed = make_task("b", t0);
  as_failed.attempts = 1;
  as_failed.last_error = "boom";
  as_failed.occurrence = t0;
  BOOST_TEST((co_await text(h.conn, "HGET", tasks_key(h), "b")).value_or("-") ==
             sched::detail::encode_record(as_failed));
  const auto b = co_await store.get("b");
  BOOST_TEST((b->state == sched::task_state::scheduled));
  BOOST_TEST(b->attempts == 1);
  BOOST_TEST((b->occurrence == t0));
}

asio::awaitable<void> a_compatible_claim_writes_the_lease_into_the_record(compatible_harness& h) {
  auto& store = h.store;
  const auto t0 = sched::now() - 1s;
  co_await store.schedule(make_task("a", t0));
  co_await store.schedule(make_task("b", t0));
  const auto claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 2u);
  const auto token_a = token_of(claimed, "a");
  const auto token_b = token_of(claimed, "b");
  BOOST_TEST(!sched::detail::token_due(token_a).has_value());  // '<counter>.<nonce>'
  BOOST_TEST(token_a != token_b);
  auto members = co_await strings(h.conn, "ZRANGE", h.store.leased_key(0), "0", "-1");
  std::sort(members.begin(), members.end());
  std::vector<std::string> expected;
  expected.push_back("a " + token_a);
  expected.push_back("b " + token_b);
  BOOST_TEST(members == expected, boost::test_tools::per_element());
  BOOST_TEST(co_await integer(h.conn, "EXISTS", inflight_key(h), lease_key(h)) == 0);

  // The record carries the try (attempt 1, the occurrence) and the token, as versions before
  // the lease tokens wrote it, and still decodes.
  const auto record = co_await text(h.conn, "HGET", tasks_key(h), "a");
  BOOST_TEST_REQUIRE(record.has_value());
  BOOST_TEST(sched::detail::lease_token_of(*record) == token_a);
  sched::task decoded;
  sched::detail::decode_record(*record, decoded);
  BOOST_TEST(decoded.attempts == 1);
  BOOST_TEST((decoded.occurrence == t0));
  const auto got = co_await store.get("a");
  BOOST_TEST((got->state == sched::task_state::in_flight));
  BOOST_TEST(got->attempts == 1);
  const auto listed = co_await store.in_flight(0, 10);
  for (const auto& t : listed) {
    BOOST_TEST(t.attempts == 1);
  }

  std::vector<sched::completion> done;
  done.push_back(completion_of("a", token_a));
  BOOST_TEST(co_await store.ack(0, std::move(done)) == 1u);
  BOOST_TEST(!(co_await text(h.conn, "HGET", tasks_key(h), "a")).has_value());
  BOOST_TEST(co_await store.nack(0, failing("b", token_b, "boom")));
  const auto b_record = co_await text(h.conn, "HGET", tasks_key(h), "b");
  BOOST_TEST_REQUIRE(b_record.has_value());
  BOOST_TEST(sched::detail::lease_token_of(*b_record).empty());
  const auto b = co_await store.get("b");
  BOOST_TEST((b->state == sched::task_state::scheduled));
  BOOST_TEST(b->last_error == "boom");
  BOOST_TEST(b->attempts == 1);
}

// A store with compatible_leases on `h`'s namespace, as a process of a rolling upgrade has.
std::unique_ptr<sched::redis_store> compatible_store(harness& h) {
  sched::redis_store_options options;
  options.name_space = h.name_space;
  options.shards = 1;
  options.compatible_leases = true;
  options.compact = false;
  return std::make_unique<sched::redis_store>(
      h.conn, redis::client_config::from_url(corvo::test::shared_schedule_server().url()), options);
}

const char* const p_and_c[] = {"p", "c"};

// Checks that tasks p and c (due at `p_due` and `p_due` + 1 ms) were claimed again after
// their leases expired: attempt 2, the expiry's error, the occurrence kept.
void check_recovered(const sched::claim_result& claimed, sched::time_point p_due) {
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 2u);
  for (const auto& c : claimed.tasks) {
    BOOST_TEST_INFO("task " << c.work.id);
    BOOST_TEST(c.work.attempts == 2);
    BOOST_TEST(c.work.last_error == "lease expired 1 times (worker died or hung)");
    BOOST_TEST((c.work.occurrence == (c.work.id == "p" ? p_due : p_due + 1ms)));
  }
}

// A rolling upgrade: processes with and without compatible_leases on one namespace. Each
// acks, nacks and recovers the leases the other took; an expiry counts the try either way.
asio::awaitable<void> both_kinds_of_lease_work_under_either_setting(harness& h) {
  const auto compatible_owner = compatible_store(h);
  auto& compatible = *compatible_owner;
  auto& plain = h.store;
  const auto t0 = sched::now() - 1s;
  co_await plain.schedule(make_task("p", t0));
  const auto by_plain = co_await plain.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(by_plain.tasks.size() == 1u);
  co_await plain.schedule(make_task("c", t0));
  const auto by_compatible = co_await compatible.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(by_compatible.tasks.size() == 1u);
  BOOST_TEST(by_compatible.tasks[0].work.id == "c");
  std::vector<sched::completion> done_c;
  done_c.push_back(completion_of("c", by_compatible.tasks[0].token));
  BOOST_TEST(co_await plain.ack(0, std::move(done_c)) == 1u);
  std::vector<sched::completion> done_p;
  done_p.push_back(completion_of("p", by_plain.tasks[0].token));
  BOOST_TEST(co_await compatible.ack(0, std::move(done_p)) == 1u);
  BOOST_TEST((co_await plain.stats()).in_flight == 0u);
  BOOST_TEST(co_await integer(h.conn, "HLEN", tasks_key(h)) == 0);

  // Leases of 1 ms, one of each kind, expire; the compatible store recovers both. (Claims of
  // one task each: p first, being due first; then c, due before p is again even when p's
  // lease has expired already.)
  co_await plain.schedule(make_task("p", t0));
  co_await plain.schedule(make_task("c", t0 + 1ms));
  const auto p_leased = co_await plain.claim(0, 1, 1ms);
  BOOST_TEST_REQUIRE(p_leased.tasks.size() == 1u);
  BOOST_TEST(p_leased.tasks[0].work.id == "p");
  const auto c_leased = co_await compatible.claim(0, 1, 1ms);
  BOOST_TEST_REQUIRE(c_leased.tasks.size() == 1u);
  BOOST_TEST(c_leased.tasks[0].work.id == "c");
  co_await h.pass(5ms);
  const auto recovered = co_await compatible.claim(0, 10, 30s);
  check_recovered(recovered, t0);
  // Each nacks its task: the try is counted once.
  BOOST_TEST(co_await plain.nack(0, failing("p", token_of(recovered, "p"), "x")));
  BOOST_TEST(co_await compatible.nack(0, failing("c", token_of(recovered, "c"), "y")));
  for (const char* id : p_and_c) {
    const auto t = co_await plain.get(id);
    BOOST_TEST_REQUIRE(t.has_value());
    BOOST_TEST((t->state == sched::task_state::scheduled));
    BOOST_TEST(t->attempts == 2);
    BOOST_TEST((t->occurrence == (t->id == "p" ? t0 : t0 + 1ms)));
  }

  // Both leased by the compatible store for 1 ms (one claim), recovered by the plain one.
  co_await plain.schedule(make_task("p", t0));
  co_await plain.schedule(make_task("c", t0 + 1ms));
  BOOST_TEST((co_await compatible.claim(0, 10, 1ms)).tasks.size() == 2u);
  co_await h.pass(5ms);
  check_recovered(co_await plain.claim(0, 10, 30s), t0);
}

const char* const odd_ids[] = {"a", "a b", "a*", "[a]", "a\\"};
const char* const still_leased[] = {"a b"};

// A schedule or a cancel of an id in flight ends its lease (found by the id: ids sharing a
// prefix, with spaces or glob characters, are told apart); the old token then acks nothing.
asio::awaitable<void> an_id_in_flight_is_found_by_its_id(harness& h) {
  auto& store = h.store;
  const auto t0 = sched::now() - 1s;
  for (const char* id : odd_ids) {
    co_await store.schedule(make_task(id, t0));
  }
  const auto claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 5u);
  const auto leased = store.leased_key(0);
  // A new schedule of "a*" ends its lease alone; so do cancels of "a", "[a]" and "a\\".
  co_await store.schedule(make_task("a*", t0 + 1h));
  BOOST_TEST(co_await store.cancel("a"));
  BOOST_TEST(co_await store.cancel("[a]"));
  BOOST_TEST(co_await store.cancel("a\\"));
  auto members = co_await strings(h.conn, "ZRANGE", leased, "0", "-1");
  std::sort(members.begin(), members.end());
  std::vector<std::string> expected;
  for (const char* id : still_leased) {
    expected.push_back(std::string(id) + " " + token_of(claimed, id));
  }
  std::sort(expected.begin(), expected.end());
  BOOST_TEST(members == expected, boost::test_tools::per_element());
  std::vector<sched::completion> stale;
  stale.push_back(completion_of("a*", token_of(claimed, "a*")));
  stale.push_back(completion_of("a", token_of(claimed, "a")));
  stale.push_back(completion_of("[a]", token_of(claimed, "[a]")));
  stale.push_back(completion_of("a\\", token_of(claimed, "a\\")));
  BOOST_TEST(co_await store.ack(0, std::move(stale)) == 0u);
  const auto rescheduled = co_await store.get("a*");
  BOOST_TEST_REQUIRE(rescheduled.has_value());
  BOOST_TEST((rescheduled->state == sched::task_state::scheduled));
  BOOST_TEST((rescheduled->due == t0 + 1h));
  BOOST_TEST(!(co_await store.get("a")).has_value());
  // The others are still in flight, and ack.
  std::vector<sched::completion> rest;
  for (const char* id : still_leased) {
    rest.push_back(completion_of(id, token_of(claimed, id)));
  }
  BOOST_TEST(co_await store.ack(0, std::move(rest)) == 1u);
  BOOST_TEST(co_await integer(h.conn, "EXISTS", leased) == 0);
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

asio::awaitable<void> the_occurrence_line_is_left_out_until_a_retry(harness& h) {
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

  // The claim leaves the record as it is (the lease's token holds the due time).
  const auto claimed = co_await store.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 1u);
  BOOST_TEST((claimed.tasks[0].work.occurrence == due));
  BOOST_TEST((co_await text(h.conn, "HGET", tasks_key(h), "x")).value_or("-") == *waiting);
  // A retry writes the line and moves the due time, not the occurrence.
  BOOST_TEST(co_await store.nack(0, failing("x", claimed.tasks[0].token, "again")));
  const auto retried_record = co_await text(h.conn, "HGET", tasks_key(h), "x");
  BOOST_TEST_REQUIRE(retried_record.has_value());
  BOOST_TEST(newlines(*retried_record) == 6u);
  BOOST_TEST(retried_record->find("\n" + std::to_string(due.time_since_epoch().count()) + "\n") !=
             std::string::npos);
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

// Members of the leased set that name no lease (no token, no record, a token the record does
// not carry, or a token-kept lease of a waiting task) are dropped when they expire; the waiting
// task they name is left alone and claimed once.
asio::awaitable<void> malformed_leased_members_are_dropped(harness& h) {
  auto& store = h.store;
  co_await store.schedule(make_task("w", sched::now() - 1s));
  const auto leased = store.leased_key(0);
  const auto past = std::to_string((sched::now() - 1s).time_since_epoch().count());
  BOOST_TEST(co_await integer(h.conn, "ZADD", leased, past, "no-token-at-all", past, "ghost 1.ff",
                              past, "w 9.zz", past, "w 9.ff.123") == 4);
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

BOOST_AUTO_TEST_CASE(a_waiting_record_leaves_out_its_occurrence_and_a_retry_writes_it) {
  corvo::test::run_scenario<harness>(
      [](harness& h) { return the_occurrence_line_is_left_out_until_a_retry(h); });
}

BOOST_AUTO_TEST_CASE(a_claim_keeps_the_lease_in_its_token_and_leaves_the_record) {
  corvo::test::run_scenario<harness>(
      [](harness& h) { return a_claim_keeps_the_lease_in_its_token(h); });
}

BOOST_AUTO_TEST_CASE(with_compatible_leases_a_claim_writes_the_lease_into_the_record) {
  corvo::test::run_scenario<compatible_harness>(
      [](compatible_harness& h) { return a_compatible_claim_writes_the_lease_into_the_record(h); });
}

BOOST_AUTO_TEST_CASE(either_setting_acks_nacks_and_recovers_both_kinds_of_lease) {
  corvo::test::run_scenario<harness>(
      [](harness& h) { return both_kinds_of_lease_work_under_either_setting(h); });
}

BOOST_AUTO_TEST_CASE(a_schedule_or_cancel_of_an_id_in_flight_finds_its_lease_by_the_id) {
  corvo::test::run_scenario<harness>(
      [](harness& h) { return an_id_in_flight_is_found_by_its_id(h); });
}

BOOST_AUTO_TEST_CASE(an_ack_batch_with_a_stale_token_acks_exactly_the_current_ones) {
  corvo::test::run_scenario<harness>(
      [](harness& h) { return a_batch_with_a_stale_token_acks_exactly_the_current_ones(h); });
}

BOOST_AUTO_TEST_CASE(leases_taken_by_an_older_version_are_acked_nacked_extended_and_expire) {
  corvo::test::run_scenario<harness>(
      [](harness& h) { return leases_of_an_older_version_keep_working(h); });
}
