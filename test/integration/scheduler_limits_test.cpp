// Global rate and concurrency limits per task type (limits.hpp, docs/scheduler.md "Limits").
// Redis: three scheduler_worker processes share a namespace whose `mail` type may run 3 at
// once and start 20 per second; 60 mail tasks and 20 tasks of an unlimited type, all due at
// once. The limits hold across the processes exactly, held tasks are not counted as
// attempts, the unlimited type is not held back, and the dispatchers wake when a permit
// frees (their safety-net sleep is 30 s, so a test that finishes in seconds proves it).
// The store-level permit timing runs on both stores (memory with a driven clock, Redis with
// the server's clock); a Redis Cluster refuses limits with a clear error.
#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <corvo/schedule/sink.hpp>
#include <fstream>
#include <map>
#include <sstream>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/scheduler_workers.hpp"
#include "support/temp_dir.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using namespace corvo::schedule;
using corvo::test::run_journal;
using corvo::test::scheduler_worker_config;
using corvo::test::scheduler_workers;

namespace {

constexpr std::size_t mail_count = 60;
constexpr std::size_t other_count = 20;
constexpr std::uint32_t mail_concurrency = 3;
constexpr std::uint32_t mail_rate = 20;  // per second
constexpr long long second_us = 1'000'000;

struct redis_parent {
  asio::io_context ctx;
  redis::client conn;
  redis_store store;
  explicit redis_parent(const std::string& url, std::string name_space, unsigned shards)
      : conn(ctx.get_executor(), redis::client_config::from_url(url)),
        store(conn, redis::client_config::from_url(url),
              {.name_space = std::move(name_space), .shards = shards}) {
    asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  }
};

// One S line of a worker journal.
struct start_line {
  std::string id;
  long long claimed_us = 0;  // the store's time of the claim (the start a rate counts)
  std::string type;
  unsigned attempts = 0;
};

std::vector<start_line> read_starts(const std::vector<std::filesystem::path>& journals) {
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

std::vector<task> typed_tasks(const std::string& type, std::size_t count, time_point due) {
  auto tasks = corvo::test::record_tasks(type + "-", count, due);
  for (auto& t : tasks) {
    t.type = type;
  }
  return tasks;
}

asio::awaitable<void> schedule_and_drain(store& tasks, scheduler_workers& workers) {
  auto all = typed_tasks("mail", mail_count, now());
  auto other = typed_tasks("other", other_count, now());
  all.insert(all.end(), other.begin(), other.end());
  co_await corvo::test::schedule_all(tasks, std::move(all));
  // 60 starts at 20/s need a bit over 2 s; the workers' safety-net sleep is 30 s.
  co_await corvo::test::wait_for_store(tasks, workers, corvo::test::drained, 20s,
                                       "60 limited and 20 unlimited tasks on three processes");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_provider)

BOOST_AUTO_TEST_CASE(three_processes_share_the_limits_of_a_type) {
  corvo::test::redis_server server;
  auto config = scheduler_worker_config::standalone(server.url());
  config.name_space = "lim";
  config.shards = 4;
  config.lease = 10s;      // a concurrency permit's fallback deadline: a release must wake
  config.max_sleep = 30s;  // no polling: only computed wake-ups make progress in time
  config.handler_delay = 100ms;
  config.types = {"mail", "other"};
  config.limits = {"mail:" + std::to_string(mail_rate) + "/1s:" + std::to_string(mail_concurrency)};
  config.count_running = "running";
  scheduler_workers workers(CORVO_SCHEDULER_WORKER_PATH, 3, config);
  redis_parent parent(server.url(), "lim", 4);

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

  // Exactly once each, every one on its first attempt: a task held back was not counted.
  const auto runs = run_journal::read(workers.journals());
  BOOST_TEST(runs.started.size() == mail_count + other_count);
  BOOST_TEST(corvo::test::not_exactly_once(runs.started) == "");
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
  BOOST_TEST(server.cli("GET", "running:mail:max") == std::to_string(mail_concurrency));
  BOOST_TEST(server.cli("GET", "running:mail") == "0");
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
  // Nothing left behind by the limit: no permit, no held task, no waiting shard.
  BOOST_TEST(server.cli("ZCARD", "{lim:limit:mail}:running") == "0");
  BOOST_TEST(server.cli("EXISTS", "{lim:limit:mail}:waiting") == "0");
}

BOOST_AUTO_TEST_CASE(a_cluster_refuses_limits_with_a_clear_error) {
  asio::io_context ctx;
  // Never connected: set_limits decides from the configuration alone.
  const auto config = redis::client_config::from_cluster_seeds({"redis://127.0.0.1:1"});
  redis::client conn(ctx.get_executor(), config);
  redis_store store(conn, config, {.name_space = "lim", .shards = 4});
  type_limits limits;
  limits["mail"].concurrency = 3;
  try {
    store.set_limits(limits);
    BOOST_ERROR("a cluster store accepted limits");
  } catch (const std::invalid_argument& e) {
    BOOST_TEST(std::string(e.what()).find("need a standalone Redis server") != std::string::npos,
               e.what());
  }
  type_limits none;
  none["mail"] = type_limit{};  // a type without limits is no limit
  BOOST_CHECK_NO_THROW(store.set_limits(none));
}

namespace {

// Holds two of three `mail` tasks back (concurrency 1) on a 2-shard namespace, as a
// dispatcher's claims would.
asio::awaitable<void> hold_two_of_three(redis_store& s) {
  type_limits limits;
  limits["mail"].concurrency = 1;
  limits["mail"].rate = rate_limit{5, 1min};  // a window the CLI calls stay inside
  s.set_limits(limits);
  for (const auto* id : {"c1", "c2", "c3"}) {
    task t;
    t.id = id;
    t.type = "mail";
    t.due = now() - 1s;
    co_await s.schedule(std::move(t));
  }
  std::size_t claimed = 0;
  for (unsigned shard = 0; shard < 2; ++shard) {
    claimed += (co_await s.claim(shard, 10, 60s)).tasks.size();
  }
  BOOST_TEST(claimed == 1u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_cli_shows_limits_and_held_tasks) {
  corvo::test::redis_server server;
  corvo::test::temp_dir dir("limits-cli");
  const auto config = dir.path() / "app.json";
  std::ofstream(config) << R"({"redis": {"url": ")" << server.url() << R"("},
    "scheduler": {"provider": "redis", "namespace": "clim", "shards": 2,
      "types": {"mail": {"concurrency": 1, "rate": "5/1m"}, "other": {"max_attempts": 2}}}})";
  redis_parent parent(server.url(), "clim", 2);
  corvo::test::run(parent.ctx, hold_two_of_three(parent.store), [&] { parent.conn.cancel(); });

  const auto corvo = [&](std::vector<std::string> words) {
    std::vector<std::string> argv{corvo::test::corvo_program().string()};
    argv.insert(argv.end(), words.begin(), words.end());
    return corvo::test::run_command(argv, 30s);
  };
  auto r = corvo({"schedule", "limits", "--config", config.string(), "--json"});
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  const auto limits = boost::json::parse(r.out).as_array();
  BOOST_TEST_REQUIRE(limits.size() == 1u);  // `other` has no limit
  const auto& mail = limits[0].as_object();
  BOOST_TEST(mail.at("type").as_string() == "mail");
  BOOST_TEST(mail.at("concurrency").as_int64() == 1);
  BOOST_TEST(mail.at("rate").as_string() == "5/1m");
  BOOST_TEST(mail.at("running").as_int64() == 1);
  BOOST_TEST(mail.at("recent_starts").as_int64() == 1);
  BOOST_TEST(mail.at("held").as_int64() == 2);
  r = corvo({"schedule", "limits", "--config", config.string()});
  BOOST_TEST(r.out == "mail  running 1 of 1  started 1 of 5/1m  held 2\n", r.out << r.err);
  r = corvo({"stats", "--config", config.string(), "--json"});
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  const auto stats = boost::json::parse(r.out).as_object();
  BOOST_TEST(stats.at("held").as_int64() == 2);
  BOOST_TEST(stats.at("scheduled").as_int64() == 2);
  BOOST_TEST(stats.at("in_flight").as_int64() == 1);
  // The limits live in the application's configuration: without it the command says so.
  r = corvo({"schedule", "limits", "--redis", server.url(), "--namespace", "clim"});
  BOOST_TEST(r.exit_code != 0);
  BOOST_TEST(r.err.find("needs --config") != std::string::npos, r.err);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- the permit timing of a claim, on both stores ----------------------------------------

namespace {

// What a scenario needs of a store: the store, and a way to let time pass on its clock.
struct limits_harness {
  store* tasks = nullptr;
  std::function<asio::awaitable<void>(std::chrono::milliseconds)> advance;
};

task mail(const std::string& id, time_point due) {
  task t;
  t.id = id;
  t.type = "mail";
  t.due = due;
  return t;
}

std::vector<completion> done(const claimed_task& c) {
  return {completion{c.work.id, c.token, std::nullopt}};
}

std::vector<std::string> ids(const claim_result& r) {
  std::vector<std::string> out;
  for (const auto& c : r.tasks) {
    out.push_back(c.work.id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

using strings = std::vector<std::string>;
constexpr auto window = 1000ms;  // long enough that the steps before the wait stay inside it
constexpr auto lease = 10s;

// mail: 2 at once, 3 starts per second.
asio::awaitable<void> permits_free_at_the_computed_times(limits_harness h) {
  auto& s = *h.tasks;
  type_limits limits;
  limits["mail"].concurrency = 2;
  limits["mail"].rate = rate_limit{3, window};
  s.set_limits(limits);
  const auto t0 = now() - 1s;
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
  BOOST_TEST_REQUIRE(first.permit_at.has_value());
  BOOST_TEST((*first.permit_at == first.store_now + std::chrono::microseconds(lease)));
  auto held = co_await s.get("m3");
  BOOST_TEST_REQUIRE(held.has_value());
  BOOST_TEST((held->state == task_state::scheduled));
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
  BOOST_TEST((*third.permit_at == first.store_now + std::chrono::microseconds(window)));
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
  BOOST_TEST((fourth.tasks[0].claimed_at == fourth.store_now));
  st = co_await s.stats();
  BOOST_TEST(st.held == 0u);
  BOOST_TEST(st.scheduled == 0u);
}

// mail: 1 at once. A renewed lease keeps its permit; an expired one frees it.
asio::awaitable<void> a_permit_lasts_as_long_as_its_lease(limits_harness h) {
  auto& s = *h.tasks;
  type_limits limits;
  limits["mail"].concurrency = 1;
  s.set_limits(limits);
  const auto t0 = now() - 1s;
  co_await s.schedule(mail("a", t0));
  co_await s.schedule(mail("b", t0 + 1ms));
  const auto first = co_await s.claim(0, 10, 600ms);
  BOOST_TEST(ids(first) == (strings{"a"}));
  BOOST_TEST_REQUIRE(first.tasks.size() == 1u);
  co_await h.advance(300ms);
  std::vector<lease_ref> leases(1);
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
  BOOST_TEST((a->state == task_state::scheduled));
  BOOST_TEST(a->attempts == 1u);
  BOOST_TEST((co_await s.stats()).held == 1u);
}

struct memory_fixture {
  asio::io_context ctx;
  memory_store store{ctx.get_executor(), 1};
  time_point clock = now();
  memory_fixture() {
    store.set_clock([this] { return clock; });
  }
  limits_harness harness() {
    return {&store, [this](std::chrono::milliseconds d) -> asio::awaitable<void> {
              clock += std::chrono::duration_cast<std::chrono::microseconds>(d);
              co_return;
            }};
  }
};

struct redis_fixture {
  corvo::test::redis_server server;
  redis_parent parent{server.url(), "perm", 1};
  limits_harness harness() {
    return {&parent.store, [](std::chrono::milliseconds d) -> asio::awaitable<void> {
              co_await corvo::sleep_for(d);
            }};
  }
  ~redis_fixture() { parent.conn.cancel(); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(permit_timing)

BOOST_AUTO_TEST_CASE(memory_store_frees_permits_at_the_computed_times) {
  memory_fixture f;
  corvo::test::run(f.ctx, permits_free_at_the_computed_times(f.harness()));
}

BOOST_AUTO_TEST_CASE(memory_store_permit_lasts_as_long_as_its_lease) {
  memory_fixture f;
  corvo::test::run(f.ctx, a_permit_lasts_as_long_as_its_lease(f.harness()));
}

BOOST_AUTO_TEST_CASE(redis_store_frees_permits_at_the_computed_times) {
  redis_fixture f;
  corvo::test::run(f.parent.ctx, permits_free_at_the_computed_times(f.harness()),
                   [&] { f.parent.conn.cancel(); });
}

BOOST_AUTO_TEST_CASE(redis_store_permit_lasts_as_long_as_its_lease) {
  redis_fixture f;
  corvo::test::run(f.parent.ctx, a_permit_lasts_as_long_as_its_lease(f.harness()),
                   [&] { f.parent.conn.cancel(); });
}

BOOST_AUTO_TEST_SUITE_END()

// ---- the memory provider: two dispatchers on one store ------------------------------------

namespace {

struct memory_runs {
  std::map<std::string, int> runs;
  std::vector<time_point> mail_starts;  // claimed_at
  std::vector<unsigned> attempts;
  int running = 0;
  int most = 0;
};

asio::awaitable<void> memory_run(memory_runs& r, const claimed_task& t) {
  ++r.runs[t.work.id];
  r.attempts.push_back(t.work.attempts);
  r.mail_starts.push_back(t.claimed_at);
  r.most = std::max(r.most, ++r.running);
  co_await corvo::sleep_for(50ms);
  --r.running;
}

struct memory_recorder {
  memory_runs* r;
  asio::awaitable<void> operator()(const claimed_task& t) const { return memory_run(*r, t); }
};

asio::awaitable<void> run_dispatcher(dispatcher& d) {
  co_await d.run();
}

asio::awaitable<void> two_dispatchers_drain(memory_store& tasks, dispatcher& a, dispatcher& b,
                                            memory_runs& r) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_dispatcher(a));
  co_await group.spawn(run_dispatcher(b));
  std::exception_ptr failed;
  try {
    co_await corvo::test::schedule_all(tasks, typed_tasks("mail", 30, now()));
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (!corvo::test::drained(co_await tasks.stats())) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("not drained after 15 s: " + std::to_string(r.runs.size()) +
                                 " tasks ran");
      }
      co_await corvo::sleep_for(20ms);
    }
  } catch (...) {
    failed = std::current_exception();
  }
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
  if (failed) {
    std::rethrow_exception(failed);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(memory_provider)

// 30 `mail` tasks due at once, 2 at once and 10 per second, two dispatchers on one store,
// max_sleep 30 s: only computed wake-ups can drain it in the 15 s allowed (about 2 s).
BOOST_AUTO_TEST_CASE(two_dispatchers_share_the_limits_of_a_type) {
  asio::io_context ctx;
  memory_store tasks(ctx.get_executor(), 2);
  memory_runs r;
  handler_registry handlers;
  handlers.on_task("mail", memory_recorder{&r});
  direct_sink sink(handlers);
  dispatcher_options options;
  options.lease = 10s;
  options.max_sleep = 30s;
  options.types["mail"].concurrency = 2;
  options.types["mail"].rate = rate_limit{10, 1s};
  dispatcher a(tasks, sink, options);
  dispatcher b(tasks, sink, options);
  corvo::test::run(ctx, two_dispatchers_drain(tasks, a, b, r));

  BOOST_TEST(r.runs.size() == 30u);
  BOOST_TEST(
      std::all_of(r.runs.begin(), r.runs.end(), [](const auto& e) { return e.second == 1; }));
  BOOST_TEST(std::all_of(r.attempts.begin(), r.attempts.end(), [](unsigned n) { return n == 1; }));
  BOOST_TEST(r.most == 2);
  auto starts = r.mail_starts;
  std::sort(starts.begin(), starts.end());
  std::size_t too_close = 0;
  for (std::size_t i = 0; i + 10 < starts.size(); ++i) {
    too_close += starts[i + 10] - starts[i] < 1s ? 1 : 0;
  }
  BOOST_TEST(too_close == 0u);
  BOOST_TEST(a.stats().succeeded + b.stats().succeeded == 30u);
  BOOST_TEST(a.stats().claims + b.stats().claims <= 8u * 30u);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- configuration ------------------------------------------------------------------------

namespace {

scheduler_options options_from(const char* json) {
  return scheduler_options::from(corvo::config::from_string(json));
}

bool names(const corvo::config_error& e, const std::string& key, const std::string& text) {
  const std::string what = e.what();
  return e.key() == key && what.find(text) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(configuration)

BOOST_AUTO_TEST_CASE(limits_are_read_from_the_types_section) {
  const auto o = options_from(R"({"scheduler": {"types": {
      "email.send": {"concurrency": 20, "rate": "100/1s", "max_attempts": 3},
      "sms": {"rate": "5/250ms"},
      "report": {"run_timeout": "10m"}}}})");
  const auto& email = o.dispatch.types.at("email.send");
  BOOST_TEST((email.concurrency == std::optional<std::uint32_t>(20)));
  BOOST_TEST((email.rate == std::optional<rate_limit>(rate_limit{100, 1s})));
  const auto& sms = o.dispatch.types.at("sms");
  BOOST_TEST(!sms.concurrency.has_value());
  BOOST_TEST((sms.rate == std::optional<rate_limit>(rate_limit{5, 250ms})));
  const auto limits = limits_of(o.dispatch.types);
  BOOST_TEST(limits.size() == 2u);  // report has none
  BOOST_TEST((limits.at("email.send") == type_limit{20, rate_limit{100, 1s}}));
  // Rates read back as written; "N/s" is "N/1s".
  BOOST_TEST(to_string(parse_rate("100/1s")) == "100/1s");
  BOOST_TEST(to_string(parse_rate("100/s")) == "100/1s");
  BOOST_TEST(to_string(parse_rate("5/250ms")) == "5/250ms");
  BOOST_TEST(to_string(parse_rate("1000/1m")) == "1000/1m");
  BOOST_TEST(to_string(parse_rate("7/90s")) == "7/90s");
}

BOOST_AUTO_TEST_CASE(bad_limits_are_refused) {
  BOOST_CHECK_EXCEPTION(options_from(R"({"scheduler": {"types": {"mail": {"concurrency": 0}}}})"),
                        corvo::config_error, [](const auto& e) {
                          return names(e, "scheduler.types[\"mail\"].concurrency", "at least 1");
                        });
  for (const auto* bad : {"20", "0/1s", "x/1s", "20/0s", "20/1d", "20/", "-1/1s"}) {
    const std::string json =
        std::string(R"({"scheduler": {"types": {"mail": {"rate": ")") + bad + R"("}}}})";
    BOOST_CHECK_EXCEPTION(options_from(json.c_str()), corvo::config_error, [&](const auto& e) {
      return names(e, "scheduler.types[\"mail\"].rate", "is not a rate");
    });
  }
  BOOST_CHECK_EXCEPTION(options_from(R"({"scheduler": {"types": {"mail": {"rates": "20/1s"}}}})"),
                        corvo::config_error, [](const auto& e) {
                          return names(e, "scheduler.types[\"mail\"].rates", "did you mean 'rate'");
                        });
}

BOOST_AUTO_TEST_SUITE_END()
