// Per-type policies: `scheduler.types.<type>` (max_attempts, retry backoff, run timeout) is
// read with unknown keys refused; a task's own retry backoff is stored with it on both
// stores; the scheduler applies the type's max attempts, backoff and run timeout, and a
// task's own values override its type's.
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <map>
#include <string>
#include <vector>

#include "support/eventually.hpp"
#include "support/run_coroutine.hpp"
#include "support/schedule_harness.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;

namespace {

using corvo::test::run_scenario;
using both_stores = corvo::test::schedule_stores<2>;

sched::scheduler_options options_from(const char* json) {
  return sched::scheduler_options::from(corvo::config::from_string(json));
}

bool names(const corvo::config_error& e, const std::string& key, const std::string& text) {
  const std::string what = e.what();
  return e.key() == key && what.find(text) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(type_policies_are_read_from_the_configuration) {
  const auto o = options_from(R"({"scheduler": {"retry_initial": "3s", "retry_max": "1m",
    "types": {
      "email.send": {"max_attempts": 3, "retry_initial": "20ms", "retry_max": "2s",
                     "retry_multiplier": 3, "retry_jitter": 0.25, "run_timeout": "45s"},
      "sms": {"retry_multiplier": 4},
      "report": {"run_timeout": "10m"}}}})");
  BOOST_REQUIRE(o.dispatch.types.size() == 3u);
  const auto& email = o.dispatch.types.at("email.send");
  BOOST_TEST((email.max_attempts == std::optional<std::uint32_t>(3)));
  BOOST_REQUIRE(email.retry.has_value());
  const sched::retry_backoff expected{20ms, 2s, 3.0, 0.25};
  BOOST_TEST((*email.retry == expected));
  BOOST_TEST((email.run_timeout == std::optional<std::chrono::milliseconds>(45s)));
  const auto& report = o.dispatch.types.at("report");
  BOOST_TEST(!report.max_attempts.has_value());
  BOOST_TEST(!report.retry.has_value());
  BOOST_TEST((report.run_timeout == std::optional<std::chrono::milliseconds>(10min)));
  // A backoff field left out is the dispatcher's (scheduler.retry_*, full jitter).
  const auto& sms = o.dispatch.types.at("sms");
  BOOST_REQUIRE(sms.retry.has_value());
  const sched::retry_backoff sms_expected{3s, 1min, 4.0, 1.0};
  BOOST_TEST((*sms.retry == sms_expected));
  BOOST_TEST(!sms.max_attempts.has_value());
  BOOST_TEST(!sms.run_timeout.has_value());
}

BOOST_AUTO_TEST_CASE(bad_type_policies_are_refused) {
  BOOST_CHECK_EXCEPTION(
      options_from(R"({"scheduler": {"types": {"email.send": {"retry_maximum": "1s"}}}})"),
      corvo::config_error, [](const auto& e) {
        return names(e, "scheduler.types[\"email.send\"].retry_maximum",
                     "did you mean 'retry_max'");
      });
  BOOST_CHECK_EXCEPTION(
      options_from(R"({"scheduler": {"types": {"email.send": {"retry_jitter": 1.5}}}})"),
      corvo::config_error, [](const auto& e) {
        return names(e, "scheduler.types[\"email.send\"]", "jitter in [0, 1]");
      });
  BOOST_CHECK_EXCEPTION(
      options_from(R"({"scheduler": {"types": {"email.send": {"max_attempts": 0}}}})"),
      corvo::config_error, [](const auto& e) {
        return names(e, "scheduler.types[\"email.send\"].max_attempts", "at least 1");
      });
  BOOST_CHECK_THROW(options_from(R"({"scheduler": {"types": {"email.send": 5}}})"),
                    corvo::config_error);
  BOOST_CHECK_THROW(options_from(R"({"scheduler": {"types": [1]}})"), corvo::config_error);
}

namespace {

// A task's own backoff is stored with it (and read back exactly); max_attempts 0 is stored
// as the default; an invalid backoff is refused.
template <class H>
asio::awaitable<void> stores_a_tasks_own_policy(H& h) {
  sched::task t;
  t.id = "own";
  t.type = "email.send";
  t.payload = 1;
  t.due = sched::now() + 1h;
  t.retry = sched::retry_backoff{5ms, 750ms, 1.5, 0.125};
  t.timeout = 20s;
  co_await h.store.schedule(t);
  const auto got = co_await h.store.get("own");
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST((got->retry == t.retry));
  BOOST_TEST((got->timeout == t.timeout));
  BOOST_TEST(got->max_attempts == sched::default_max_attempts);

  auto bad = t;
  bad.id = "bad";
  bad.retry->multiplier = 0.5;
  bool threw = false;
  try {
    co_await h.store.schedule(std::move(bad));
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  BOOST_TEST(threw);
  const auto refused = co_await h.store.get("bad");
  BOOST_TEST(!refused.has_value());
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(a_tasks_own_policy_is_stored_with_it, H, both_stores) {
  run_scenario<H>([](H& h) { return stores_a_tasks_own_policy(h); });
}

namespace {

using steady = std::chrono::steady_clock;

// Fails every run, recording when each try of each task started.
struct failing {
  std::map<std::string, std::vector<steady::time_point>>* tries;
  asio::awaitable<void> operator()(const sched::claimed_task& t) const {
    (*tries)[t.work.id].push_back(steady::now());
    throw std::runtime_error("refused");
    co_return;
  }
};

// Never finishes on its own: only a run timeout ends it. Records when each try started.
struct hanging {
  std::map<std::string, std::vector<steady::time_point>>* tries;
  asio::awaitable<void> operator()(const sched::claimed_task& t) const {
    (*tries)[t.work.id].push_back(steady::now());
    co_await corvo::sleep_for(10min);
  }
};

asio::awaitable<void> run_scheduler(sched::scheduler& s) {
  co_await s.run();
}

sched::task make_task(std::string id, std::string type) {
  sched::task t;
  t.id = std::move(id);
  t.type = std::move(type);
  t.payload = 1;
  t.due = sched::now();
  return t;
}

struct outcome {
  std::map<std::string, std::vector<steady::time_point>> tries;
  std::map<std::string, sched::task> dead;
};

asio::awaitable<void> run_until_dead(sched::scheduler& s, outcome& out) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  // Type policy: 3 attempts, backoff 40 ms then 80 ms (no jitter).
  co_await s.schedule(make_task("by-type", "email.send"));
  // Its own max_attempts overrides the type's.
  auto once = make_task("own-attempts", "email.send");
  once.max_attempts = 1;
  co_await s.schedule(std::move(once));
  // Its own backoff overrides the type's: 2 attempts, 300 ms apart at least.
  auto slow = make_task("own-backoff", "email.send");
  slow.max_attempts = 2;
  slow.retry = sched::retry_backoff{300ms, 300ms, 1.0, 0.0};
  co_await s.schedule(std::move(slow));
  // The type's run timeout (60 ms) cuts a hanging run, and the cut run counts as a failed
  // attempt (2 allowed, retried after 10 ms); a task's own timeout (30 ms) overrides it.
  auto timed = make_task("type-timeout", "report");
  timed.max_attempts = 2;
  timed.retry = sched::retry_backoff{10ms, 10ms, 1.0, 0.0};
  co_await s.schedule(std::move(timed));
  auto own_timeout = make_task("own-timeout", "report");
  own_timeout.max_attempts = 1;
  own_timeout.timeout = 30ms;
  co_await s.schedule(std::move(own_timeout));
  const bool all_dead =
      co_await corvo::test::eventually([&] { return s.dispatch_stats().dead_lettered == 5; }, 20s);
  BOOST_TEST(all_dead);
  for (auto& t : co_await s.dead_letters(0, 10)) {
    out.dead.emplace(t.id, t);
  }
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

// The policies of this file's scheduler test; `provider` is "memory" or "redis".
std::string policy_config(const std::string& provider) {
  std::string redis;
  if (provider == "redis") {
    redis = R"("redis": {"url": ")" + corvo::test::shared_schedule_server().url() + R"("},)";
  }
  return "{" + redis + R"("scheduler": {"provider": ")" + provider + R"(", "namespace": ")" +
         corvo::test::next_schedule_namespace() + R"(", "shards": 2, "retry_initial": "1h",
      "types": {"email.send": {"max_attempts": 3, "retry_initial": "40ms", "retry_max": "1s",
                               "retry_multiplier": 2, "retry_jitter": 0},
                "report": {"run_timeout": "60ms"}}}})";
}

void check_policies(const outcome& out, const sched::scheduler& s) {
  auto tries = out.tries;
  const auto& by_type = tries["by-type"];
  BOOST_REQUIRE(by_type.size() == 3u);            // the type's max_attempts
  BOOST_TEST((by_type[1] - by_type[0] >= 40ms));  // retry 1: 40 ms exactly (no jitter)
  BOOST_TEST((by_type[2] - by_type[1] >= 80ms));  // retry 2: 40 ms x 2
  BOOST_TEST(tries["own-attempts"].size() == 1u);
  const auto& own_backoff = tries["own-backoff"];
  BOOST_REQUIRE(own_backoff.size() == 2u);
  BOOST_TEST((own_backoff[1] - own_backoff[0] >= 300ms));

  BOOST_REQUIRE(out.dead.size() == 5u);
  BOOST_TEST(out.dead.at("by-type").attempts == 3u);
  BOOST_TEST(out.dead.at("by-type").max_attempts == 3u);
  BOOST_TEST(out.dead.at("by-type").last_error == "refused");
  BOOST_TEST(out.dead.at("own-attempts").attempts == 1u);
  BOOST_TEST(out.dead.at("own-attempts").max_attempts == 1u);
  BOOST_TEST(out.dead.at("own-backoff").attempts == 2u);
  BOOST_TEST(tries["type-timeout"].size() == 2u);  // the cut run was attempt 1 of 2
  BOOST_TEST(out.dead.at("type-timeout").attempts == 2u);
  BOOST_TEST(out.dead.at("type-timeout").last_error == "run timed out after 60 ms");
  BOOST_TEST(tries["own-timeout"].size() == 1u);
  BOOST_TEST(out.dead.at("own-timeout").attempts == 1u);
  BOOST_TEST(out.dead.at("own-timeout").last_error == "run timed out after 30 ms");
  BOOST_TEST(s.dispatch_stats().timed_out == 3u);
  BOOST_TEST(s.dispatch_stats().retried == 4u);  // by-type 2, own-backoff 1, type-timeout 1
  BOOST_TEST(s.dispatch_stats().dead_lettered == 5u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_memory_scheduler_applies_type_policies_and_task_overrides) {
  asio::io_context ctx;
  sched::scheduler s(ctx.get_executor(), options_from(policy_config("memory").c_str()));
  outcome out;
  s.handlers().on_task("email.send", failing{&out.tries});
  s.handlers().on_task("report", hanging{&out.tries});
  corvo::test::run(ctx, run_until_dead(s, out));
  check_policies(out, s);
}

BOOST_AUTO_TEST_CASE(the_redis_scheduler_applies_type_policies_and_task_overrides) {
  asio::io_context ctx;
  const auto url = redis::client_config::from_url(corvo::test::shared_schedule_server().url());
  redis::client conn(ctx.get_executor(), url);
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  sched::scheduler s(ctx.get_executor(), options_from(policy_config("redis").c_str()), &conn, url);
  outcome out;
  s.handlers().on_task("email.send", failing{&out.tries});
  s.handlers().on_task("report", hanging{&out.tries});
  corvo::test::run(ctx, run_until_dead(s, out), [&] { conn.cancel(); });
  check_policies(out, s);
}
