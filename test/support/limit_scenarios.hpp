#pragma once
// The limit scenarios (docs/scheduler.md "Limits") that run on more than one deployment: a
// standalone server and a Redis Cluster (scheduler_limits_test, scheduler_limits_cluster_test)
// and, for the permit timing, the memory store.
//
// - Three processes share the limits of a type: three scheduler_worker processes, `mail`
//   limited to 3 at once and 20 per second, 60 `mail` and 20 unlimited tasks due at once,
//   runs of 100 ms, max_sleep 30 s and leases of 10 s (only computed wake-ups and released
//   permits make progress in time). check_shared_limits() asserts the exact outcome.
// - The permit timing of a claim, store calls only: permits_free_at_the_computed_times and
//   a_permit_lasts_as_long_as_its_lease.

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/schedule/store.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "support/run_coroutine.hpp"
#include "support/schedule_builders.hpp"
#include "support/scheduler_workers.hpp"

namespace corvo::test::limits {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using schedule::claim_result;
using schedule::claimed_task;
using schedule::completion;
using schedule::store;
using schedule::task;
using schedule::time_point;

inline constexpr std::size_t mail_count = 60;
inline constexpr std::size_t other_count = 20;
inline constexpr std::uint32_t mail_concurrency = 3;
inline constexpr std::uint32_t mail_rate = 20;  // per second
inline constexpr long long second_us = 1'000'000;

/// The workers of the three-process scenario on `connection` (scheduler_worker_config's
/// standalone() or cluster()); `count_running`: the Redis key prefix of the run counters.
inline scheduler_worker_config shared_limits_config(scheduler_worker_config config,
                                                    std::string name_space, unsigned shards,
                                                    std::string count_running) {
  config.name_space = std::move(name_space);
  config.shards = shards;
  config.lease = 10s;      // a concurrency permit's fallback deadline: a release must wake
  config.max_sleep = 30s;  // no polling: only computed wake-ups make progress in time
  config.handler_delay = 100ms;
  config.types = {"mail", "other"};
  config.limits = {"mail:" + std::to_string(mail_rate) + "/1s:" + std::to_string(mail_concurrency)};
  config.count_running = std::move(count_running);
  return config;
}

/// One S line of a worker journal.
struct start_line {
  std::string id;
  long long claimed_us = 0;  // the store's time of the claim (the start a rate counts)
  std::string type;
  unsigned attempts = 0;
};

inline std::vector<start_line> read_starts(const std::vector<std::filesystem::path>& journals) {
  std::vector<start_line> out;
  for (const auto& path : journals) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      if (!line.starts_with("S ")) {
        continue;
      }
      std::istringstream words(line);
      char event = 0;
      long long pid = 0, occurrence = 0, at = 0;
      start_line s;
      if (!(words >> event >> pid >> s.id >> occurrence >> at >> s.claimed_us >> s.type >>
            s.attempts)) {
        throw std::runtime_error("malformed journal line: " + line);
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

inline std::vector<task> typed_tasks(const std::string& type, std::size_t count, time_point due) {
  auto tasks = record_tasks(type + "-", count, due);
  for (auto& t : tasks) {
    t.type = type;
  }
  return tasks;
}

inline asio::awaitable<void> schedule_and_drain(store& tasks, scheduler_workers& workers) {
  auto all = typed_tasks("mail", mail_count, schedule::now());
  auto other = typed_tasks("other", other_count, schedule::now());
  all.insert(all.end(), other.begin(), other.end());
  co_await schedule_all(tasks, std::move(all));
  // 60 starts at 20/s need a bit over 2 s; the workers' safety-net sleep is 30 s.
  co_await wait_for_store(tasks, workers, drained, 20s,
                          "60 limited and 20 unlimited tasks on three processes");
}

/// Runs schedule_and_drain on `parent`'s store (on its context; its connection is cancelled at
/// the end) with `workers`, logs how long the drain took, then stops the workers and reports
/// what they found wrong.
template <class Parent>
void drain_and_stop(Parent& parent, scheduler_workers& workers) {
  const auto started = std::chrono::steady_clock::now();
  corvo::test::run(parent.ctx, schedule_and_drain(parent.store, workers),
                   [&] { parent.conn.cancel(); });
  BOOST_TEST_MESSAGE("drained in " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - started)
                                          .count()
                                   << " ms");
  for (const auto& problem : workers.stop_all()) {
    BOOST_ERROR(problem);
  }
}

/// After drain_and_stop: the exact outcome of the three-process scenario.
/// `redis(args)`: a command's reply on the node of its key (redis-cli); `counter`: the
/// workers' count_running prefix; `name_space`: theirs.
inline void check_shared_limits(scheduler_workers& workers,
                                const std::function<std::string(std::vector<std::string>)>& redis,
                                const std::string& counter, const std::string& name_space) {
  // Exactly once each, every one on its first attempt: a task held back was not counted.
  const auto runs = run_journal::read(workers.journals());
  BOOST_TEST(runs.started.size() == mail_count + other_count);
  BOOST_TEST(not_exactly_once(runs.started) == "");
  const auto starts = read_starts(workers.journals());
  BOOST_TEST(starts.size() == mail_count + other_count);
  std::vector<long long> mail, other;
  for (const auto& s : starts) {
    BOOST_TEST(s.attempts == 1u, s.id << " started with attempts " << s.attempts);
    (s.type == "mail" ? mail : other).push_back(s.claimed_us);
  }
  std::sort(mail.begin(), mail.end());
  std::sort(other.begin(), other.end());
  BOOST_REQUIRE_EQUAL(mail.size(), mail_count);
  BOOST_REQUIRE_EQUAL(other.size(), other_count);

  // The concurrency: never more than 3 mail runs at once across the processes, and 3 reached.
  BOOST_TEST(redis({"GET", counter + ":mail:max"}) == std::to_string(mail_concurrency));
  BOOST_TEST(redis({"GET", counter + ":mail"}) == "0");
  // The rate: no window of 1 s (on the server's clock) holds more than 20 starts, i.e. any
  // 21 consecutive starts span at least 1 s.
  std::size_t too_close = 0;
  for (std::size_t i = 0; i + mail_rate < mail.size(); ++i) {
    if (mail[i + mail_rate] - mail[i] < second_us) {
      ++too_close;
      BOOST_TEST_MESSAGE("starts " << i << ".." << i + mail_rate << " span "
                                   << mail[i + mail_rate] - mail[i] << " us");
    }
  }
  BOOST_TEST(too_close == 0u);
  // The unlimited type was not held back behind the limited one: all of it had started
  // before the 21st mail start (which had to wait for the rate window).
  BOOST_TEST(other.back() < mail[mail_rate]);

  // Every run succeeded; the claims stay within a small multiple of the tasks (a dispatcher
  // spinning on held tasks would claim thousands of times).
  std::uint64_t succeeded = 0, stale = 0, failed = 0, claims = 0;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const auto stats = workers[i].stats();
    BOOST_REQUIRE_MESSAGE(stats, workers[i].name() << " printed no stats");
    succeeded += stats->succeeded;
    stale += stats->stale;
    failed += stats->retried + stats->dead_lettered;
    claims += stats->claims;
  }
  BOOST_TEST_MESSAGE("claims " << claims);
  BOOST_TEST(succeeded == mail_count + other_count);
  BOOST_TEST(stale == 0u);
  BOOST_TEST(failed == 0u);
  BOOST_TEST(claims <= 8 * (mail_count + other_count));
  // Nothing left behind by the limit: no permit, no waiting shard.
  const auto limit_key = "{" + name_space + ":limit:mail}:";
  BOOST_TEST(redis({"ZCARD", limit_key + "running"}) == "0");
  BOOST_TEST(redis({"EXISTS", limit_key + "waiting"}) == "0");
}

// ---- the permit timing of a claim ------------------------------------------------------

/// What a scenario needs of a store: the store, a way to let time pass on its clock, and
/// whether a limited task's claim time is the claim's own (one script: standalone Redis, the
/// memory store) or the time its permit was taken, just after (a Redis Cluster's steps).
struct harness {
  store* tasks = nullptr;
  std::function<asio::awaitable<void>(std::chrono::milliseconds)> advance;
  bool permits_in_steps = false;
};

inline task mail(const std::string& id, time_point due) {
  task t;
  t.id = id;
  t.type = "mail";
  t.due = due;
  return t;
}

inline std::vector<completion> done(const claimed_task& c) {
  return completions(c.work.id, c.token);
}

inline std::vector<std::string> ids(const claim_result& r) {
  std::vector<std::string> out;
  for (const auto& c : r.tasks) {
    out.push_back(c.work.id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// The earliest claim time of the claim's `mail` tasks (the start its permits count).
inline time_point first_mail_start(const claim_result& r) {
  auto first = time_point::max();
  for (const auto& c : r.tasks) {
    if (c.work.type == "mail") {
      first = std::min(first, c.claimed_at);
    }
  }
  return first;
}

using strings = std::vector<std::string>;
inline constexpr auto window = 1000ms;  // long enough that the steps before the wait stay inside it
inline constexpr auto lease = 10s;

// mail: 2 at once, 3 starts per second.
inline asio::awaitable<void> permits_free_at_the_computed_times(harness h) {
  auto& s = *h.tasks;
  schedule::type_limits limits;
  limits["mail"].concurrency = 2;
  limits["mail"].rate = schedule::rate_limit{3, window};
  s.set_limits(limits);
  const auto t0 = schedule::now() - 1s;
  for (const auto* id : {"m1", "m2", "m3"}) {
    co_await s.schedule(mail(id, t0));
  }
  task other = mail("x1", t0);
  other.type = "other";
  co_await s.schedule(other);

  // Concurrency: two mail runs and the unlimited task; m3 held back, still scheduled and
  // due, no attempt counted; the permit frees at the earliest lease deadline at the latest.
  auto first = co_await s.claim(0, 10, lease);
  BOOST_TEST(ids(first) == (strings{"m1", "m2", "x1"}));
  const auto started = first_mail_start(first);
  BOOST_TEST_REQUIRE(first.permit_at.has_value());
  BOOST_TEST((*first.permit_at == started + std::chrono::microseconds(lease)));
  if (!h.permits_in_steps) {
    BOOST_TEST((started == first.store_now));
  }
  auto held = co_await s.get("m3");
  BOOST_TEST_REQUIRE(held.has_value());
  BOOST_TEST((held->state == schedule::task_state::scheduled));
  BOOST_TEST(held->attempts == 0u);
  BOOST_TEST((held->due == t0));
  auto st = co_await s.stats();
  BOOST_TEST(st.held == 1u);
  BOOST_TEST(st.scheduled == 1u);
  BOOST_TEST(st.due_now == 1u);
  BOOST_TEST(st.in_flight == 3u);
  const auto listed = co_await s.browse(0, 10);
  BOOST_TEST_REQUIRE(listed.size() == 1u);
  BOOST_TEST(listed[0].id == "m3");
  auto states = co_await s.limit_states();
  BOOST_TEST_REQUIRE(states.size() == 1u);
  BOOST_TEST(states[0].type == "mail");
  BOOST_TEST(states[0].running == 2u);
  BOOST_TEST(states[0].recent_starts == 2u);
  BOOST_TEST(states[0].held == 1u);

  // A release frees a permit at once: the next claim takes m3 on its first attempt.
  const auto* m1 = &first.tasks[0];
  for (const auto& c : first.tasks) {
    if (c.work.id == "m1") {
      m1 = &c;
    }
  }
  BOOST_TEST(co_await s.ack(0, done(*m1)) == 1u);
  auto second = co_await s.claim(0, 10, lease);
  BOOST_TEST(ids(second) == (strings{"m3"}));
  BOOST_TEST_REQUIRE(second.tasks.size() == 1u);
  BOOST_TEST(second.tasks[0].work.attempts == 1u);
  BOOST_TEST(!second.permit_at.has_value());
  BOOST_TEST((co_await s.stats()).held == 0u);

  // The rate: 3 starts in the window, so m4 waits until the first start leaves it, though a
  // concurrency permit is free (m2 acked).
  for (const auto& c : first.tasks) {
    if (c.work.id == "m2") {
      BOOST_TEST(co_await s.ack(0, done(c)) == 1u);
    }
  }
  co_await s.schedule(mail("m4", t0));
  auto third = co_await s.claim(0, 10, lease);
  BOOST_TEST(third.tasks.empty());
  BOOST_TEST_REQUIRE(third.permit_at.has_value());
  BOOST_TEST((*third.permit_at == started + std::chrono::microseconds(window)));
  // Cancel and reschedule reach a held task.
  co_await s.schedule(mail("m5", t0));
  BOOST_TEST((co_await s.claim(0, 10, lease)).tasks.empty());
  BOOST_TEST(co_await s.cancel("m5"));
  BOOST_TEST(!(co_await s.get("m5")).has_value());
  BOOST_TEST((co_await s.stats()).held == 1u);

  // Past the permit time the held task runs.
  co_await h.advance(window);
  auto fourth = co_await s.claim(0, 10, lease);
  BOOST_TEST(ids(fourth) == (strings{"m4"}));
  BOOST_TEST_REQUIRE(fourth.tasks.size() == 1u);
  BOOST_TEST(fourth.tasks[0].work.attempts == 1u);
  if (h.permits_in_steps) {
    BOOST_TEST((fourth.tasks[0].claimed_at >= fourth.store_now));
  } else {
    BOOST_TEST((fourth.tasks[0].claimed_at == fourth.store_now));
  }
  st = co_await s.stats();
  BOOST_TEST(st.held == 0u);
  BOOST_TEST(st.scheduled == 0u);
}

// mail: 1 at once. A renewed lease keeps its permit; an expired one frees it.
inline asio::awaitable<void> a_permit_lasts_as_long_as_its_lease(harness h) {
  auto& s = *h.tasks;
  schedule::type_limits limits;
  limits["mail"].concurrency = 1;
  s.set_limits(limits);
  const auto t0 = schedule::now() - 1s;
  co_await s.schedule(mail("a", t0));
  co_await s.schedule(mail("b", t0 + 1ms));
  const auto first = co_await s.claim(0, 10, 600ms);
  BOOST_TEST(ids(first) == (strings{"a"}));
  BOOST_TEST_REQUIRE(first.tasks.size() == 1u);
  co_await h.advance(300ms);
  std::vector<schedule::lease_ref> leases(1);
  leases[0].id = first.tasks[0].work.id;
  leases[0].token = first.tasks[0].token;
  const auto renewed = co_await s.extend(0, leases, 600ms);
  BOOST_TEST(renewed.size() == 1u);
  BOOST_TEST((renewed.size() == 1 && renewed[0]));
  co_await h.advance(400ms);  // past the first lease, within the renewed one
  const auto second = co_await s.claim(0, 10, 600ms);
  BOOST_TEST(second.tasks.empty());
  BOOST_TEST_REQUIRE(second.permit_at.has_value());
  BOOST_TEST((*second.permit_at >= first.store_now + 900ms));
  // The worker dies: its lease and permit run out; `b` (due first) gets the permit, `a`
  // comes back due and waits, its dead try counted.
  co_await h.advance(600ms);
  const auto third = co_await s.claim(0, 10, 600ms);
  BOOST_TEST(ids(third) == (strings{"b"}));
  const auto a = co_await s.get("a");
  BOOST_TEST_REQUIRE(a.has_value());
  BOOST_TEST((a->state == schedule::task_state::scheduled));
  BOOST_TEST(a->attempts == 1u);
  BOOST_TEST((co_await s.stats()).held == 1u);
}

}  // namespace corvo::test::limits
