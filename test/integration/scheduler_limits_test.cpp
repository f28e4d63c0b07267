// Global rate and concurrency limits per task type (limits.hpp, docs/scheduler.md "Limits").
// Redis: three scheduler_worker processes share a namespace whose `mail` type may run 3 at
// once and start 20 per second; 60 mail tasks and 20 tasks of an unlimited type, all due at
// once. The limits hold across the processes exactly, held tasks are not counted as
// attempts, the unlimited type is not held back, and the dispatchers wake when a permit
// frees (their safety-net sleep is 30 s, so a test that finishes in seconds proves it).
// The store-level permit timing runs on both stores (memory with a driven clock, Redis with
// the server's clock). The same scenarios run on a Redis Cluster in
// scheduler_limits_cluster_test (support/limit_scenarios.hpp).
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
#include "support/limit_scenarios.hpp"
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

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_provider)

BOOST_AUTO_TEST_CASE(three_processes_share_the_limits_of_a_type) {
  corvo::test::redis_server server;
  const auto config = corvo::test::limits::shared_limits_config(
      scheduler_worker_config::standalone(server.url()), "lim", 4, "running");
  scheduler_workers workers(CORVO_SCHEDULER_WORKER_PATH, 3, config);
  redis_parent parent(server.url(), "lim", 4);
  corvo::test::limits::drain_and_stop(parent, workers);
  const auto redis = [&](std::vector<std::string> args) { return server.cli_argv(args); };
  corvo::test::limits::check_shared_limits(workers, redis, "running", "lim");
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

using corvo::test::limits::a_permit_lasts_as_long_as_its_lease;
using corvo::test::limits::permits_free_at_the_computed_times;
using limits_harness = corvo::test::limits::harness;

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
    co_await corvo::test::schedule_all(tasks, corvo::test::limits::typed_tasks("mail", 30, now()));
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
