// The dashboard's task events (GET /api/events, docs/dashboard.md "Task events") and the
// metric corvo_schedule_events_total, on both stores (the Redis one on a real redis-server):
// tasks scheduled, run, failed, dead-lettered, cancelled and rescheduled through the store
// calls a dispatcher makes give exactly their events, newest first; the task and kind
// filters, offset paging and `after` (only what came since) select exactly; bad parameters
// are 400s naming the parameter; a namespace with events off is a 409 that says so; the
// metric counts exactly what the store wrote, a claim's lease-expiry events included.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/mpl/list.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/ops/collectors.hpp>
#include <corvo/ops/dashboard.hpp>
#include <corvo/ops/metrics.hpp>
#include <corvo/ops/router.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/event_counts.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/sink.hpp>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace http = boost::beast::http;
namespace ops = corvo::ops;
namespace redis = corvo::redis;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;

namespace {

corvo::test::redis_server& server() {
  static corvo::test::redis_server s;
  return s;
}

std::string fresh_namespace() {
  static int n = 0;
  return "dashevents" + std::to_string(++n);
}

sched::events_options events(bool on) {
  sched::events_options o;
  o.enabled = on;
  o.source = "route-test";
  return o;
}

/// The memory store, on the real clock.
struct memory_side {
  asio::io_context context;
  std::unique_ptr<sched::memory_store> store;

  void open(unsigned shards, bool events_on) {
    store = std::make_unique<sched::memory_store>(context.get_executor(), shards);
    store->set_events(events(events_on));
  }
  void stop() {}
};

/// The Redis store on the shared server, a fresh namespace.
struct redis_side {
  asio::io_context context;
  redis::client conn{context.get_executor(), redis::client_config::from_url(server().url())};
  std::unique_ptr<sched::redis_store> store;

  redis_side() {
    asio::co_spawn(context, conn.run(), [](std::exception_ptr) {});
  }
  void open(unsigned shards, bool events_on) {
    sched::redis_store_options o;
    o.name_space = fresh_namespace();
    o.shards = shards;
    o.events = events(events_on);
    store = std::make_unique<sched::redis_store>(
        conn, redis::client_config::from_url(server().url()), std::move(o));
  }
  void stop() { conn.cancel(); }
};

using both_stores = boost::mpl::list<memory_side, redis_side>;

/// A dashboard over the side's store as namespace "jobs" (events as the store writes them),
/// with the metrics of a dispatcher over it (never run: the test makes the store calls).
struct board {
  sched::handler_registry handlers;
  sched::direct_sink sink{handlers};
  std::unique_ptr<sched::dispatcher> dispatch;
  ops::registry metrics;
  ops::dashboard dashboard;
  ops::router routes{ops::access_policy{"", "csrf", {}}};

  board(sched::store& tasks, bool events_on) {
    dispatch = std::make_unique<sched::dispatcher>(tasks, sink);
    ops::namespace_options options;
    options.events = events_on;
    dashboard.add_namespace("jobs", tasks, dispatch.get(), options);
    ops::watch_scheduler(metrics, *dispatch, tasks, "jobs");
    dashboard.install(routes);
  }

  double events_total(const std::string& kind) {
    metrics.render();  // runs the collectors
    return metrics.value("corvo_schedule_events_total", {{"namespace", "jobs"}, {"kind", kind}});
  }
};

struct answer {
  unsigned status = 0;
  json::value body;
};

asio::awaitable<answer> get(ops::router& routes, std::string target) {
  ops::request req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  auto res = co_await routes.handle(std::move(req));
  answer a;
  a.status = res.result_int();
  a.body = json::parse(res.body());
  co_return a;
}

// GET that must answer 200; its body.
asio::awaitable<json::object> get_ok(ops::router& routes, std::string target) {
  auto a = co_await get(routes, target);
  BOOST_TEST_REQUIRE(a.status == 200u, target << ": " << json::serialize(a.body));
  co_return a.body.as_object();
}

// "kind task attempt reason" of each event of an answer, in its order.
std::vector<std::string> lines_of(const json::object& answer) {
  std::vector<std::string> out;
  for (const auto& v : answer.at("events").as_array()) {
    const auto& e = v.as_object();
    std::string line = std::string(e.at("kind").as_string()) + " " +
                       std::string(e.at("task").as_string()) + " " +
                       std::to_string(e.at("attempt").as_int64());
    const auto& reason = e.at("reason").as_string();
    if (!reason.empty()) {
      line += " " + std::string(reason);
    }
    out.push_back(std::move(line));
  }
  return out;
}

using lines = std::vector<std::string>;

sched::task make_task(std::string id, std::uint32_t max_attempts, sched::time_point due) {
  sched::task t;
  t.id = std::move(id);
  t.type = "mail";
  t.payload = 1;
  t.due = due;
  t.max_attempts = max_attempts;
  return t;
}

// Schedules task `id` (type "mail") due at `due`.
asio::awaitable<void> add(sched::store& s, std::string id, std::uint32_t max_attempts,
                          sched::time_point due) {
  auto t = make_task(std::move(id), max_attempts, due);
  co_await s.schedule(std::move(t));
}

asio::awaitable<void> fail_run(sched::store& s, const sched::claimed_task& c, std::string error,
                               bool retry) {
  sched::failure f;
  f.id = c.work.id;
  f.token = c.token;
  f.error = std::move(error);
  if (retry) {
    f.retry_in = std::chrono::microseconds(std::chrono::hours(1));
  }
  const auto r1 = co_await s.nack(c.shard, std::move(f));
  BOOST_TEST(r1);
}

const std::string script_reason = "<script>window.x = 1</script> refused";

// Every event, newest first, of the scenario below.
const lines all_events{
    "scheduled d 0 rescheduled",
    "cancelled c 0",
    "failed e 1 try again",
    "dead b 1 " + script_reason,
    "succeeded a 1",
    "started e 1",
    "started b 1",
    "started a 1",
    "scheduled d 0",
    "scheduled c 0",
    "scheduled e 0",
    "scheduled b 0",
    "scheduled a 0",
};

// Five tasks through the store calls a dispatcher makes (one shard: one order of writing):
// a succeeds, b fails permanently (a reason holding a <script> element), e fails and waits
// for a retry, c is cancelled, d rescheduled.
template <class Side>
asio::awaitable<void> five_tasks(Side& side, board& b) {
  auto& s = *side.store;
  const auto now = sched::now();
  co_await add(s, "a", 3, now - 3s);
  co_await add(s, "b", 1, now - 2s);
  co_await add(s, "e", 3, now - 1s);
  co_await add(s, "c", 3, now + 1h);
  co_await add(s, "d", 3, now + 1h);
  auto claimed = co_await s.claim(0, 10, 30s);
  BOOST_TEST_REQUIRE(claimed.tasks.size() == 3u);
  BOOST_TEST_REQUIRE(claimed.tasks[0].work.id == "a");  // in due order
  BOOST_TEST_REQUIRE(claimed.tasks[1].work.id == "b");
  BOOST_TEST_REQUIRE(claimed.tasks[2].work.id == "e");
  std::vector<sched::completion> done(1);
  done[0].id = claimed.tasks[0].work.id;
  done[0].token = claimed.tasks[0].token;
  const auto r2 = co_await s.ack(0, std::move(done));
  BOOST_TEST(r2 == 1u);
  co_await fail_run(s, claimed.tasks[1], script_reason, false);
  co_await fail_run(s, claimed.tasks[2], "try again", true);
  const auto r3 = co_await s.cancel("c");
  BOOST_TEST(r3);
  const auto r4 = co_await s.reschedule("d", now + 2h);
  BOOST_TEST(r4);

  // ---- every event, newest first, with every field ----
  const auto everything = co_await get_ok(b.routes, "/api/events?ns=jobs");
  BOOST_TEST(lines_of(everything) == all_events, json::serialize(everything));
  BOOST_TEST(everything.at("matched").as_int64() == 13);
  BOOST_TEST(everything.at("more").as_bool() == false);
  BOOST_TEST(everything.at("events_enabled").as_bool() == true);
  std::set<std::string> positions;
  double previous_at = 1e300;
  for (const auto& v : everything.at("events").as_array()) {
    const auto& e = v.as_object();
    BOOST_TEST(e.at("type").as_string() == "mail");
    BOOST_TEST(e.at("source").as_string() == "route-test");
    BOOST_TEST(e.at("shard").as_int64() == 0);
    BOOST_TEST(e.at("due_ms").is_null() == (e.at("kind").as_string() != "scheduled"));
    const double at = e.at("at_ms").as_double();
    BOOST_TEST(at <= previous_at);  // newest first
    BOOST_TEST(at > 0);
    previous_at = at;
    positions.insert(std::string(e.at("position").as_string()));
  }
  BOOST_TEST(positions.size() == 13u);  // each event its own position
  const auto& first = everything.at("events").as_array().back().as_object();  // scheduled a
  BOOST_TEST(first.at("due_ms").as_double() ==
             static_cast<double>((now - 3s).time_since_epoch().count()) / 1000.0);

  // ---- one task; some kinds; both ----
  const auto got1 = lines_of(co_await get_ok(b.routes, "/api/events?ns=jobs&task=e"));
  BOOST_TEST(got1 == (lines{"failed e 1 try again", "started e 1", "scheduled e 0"}));
  const auto got2 = lines_of(co_await get_ok(b.routes, "/api/events?ns=jobs&kinds=dead,cancelled"));
  BOOST_TEST(got2 == (lines{"cancelled c 0", "dead b 1 " + script_reason}));
  const auto got3 = lines_of(co_await get_ok(b.routes, "/api/events?ns=jobs&task=a&kinds=started"));
  BOOST_TEST(got3 == (lines{"started a 1"}));
  const auto got4 = lines_of(co_await get_ok(b.routes, "/api/events?ns=jobs&task=nobody"));
  BOOST_TEST(got4.empty());
  const auto got5 = lines_of(co_await get_ok(b.routes, "/api/events?ns=jobs&type=other"));
  BOOST_TEST(got5.empty());

  // ---- pages of 5, newest first ----
  const auto page1 = co_await get_ok(b.routes, "/api/events?ns=jobs&limit=5");
  const auto page2 = co_await get_ok(b.routes, "/api/events?ns=jobs&limit=5&offset=5");
  const auto page3 = co_await get_ok(b.routes, "/api/events?ns=jobs&limit=5&offset=10");
  BOOST_TEST(lines_of(page1) == lines(all_events.begin(), all_events.begin() + 5));
  BOOST_TEST(lines_of(page2) == lines(all_events.begin() + 5, all_events.begin() + 10));
  BOOST_TEST(lines_of(page3) == lines(all_events.begin() + 10, all_events.end()));
  BOOST_TEST(page1.at("more").as_bool());
  BOOST_TEST(page2.at("more").as_bool());
  BOOST_TEST(!page3.at("more").as_bool());
  BOOST_TEST(page3.at("matched").as_int64() == 13);
  const auto past =
      co_await get_ok(b.routes, "/api/events?ns=jobs&limit=5&offset=13&kinds=scheduled");
  BOOST_TEST(lines_of(past).empty());
  BOOST_TEST(past.at("matched").as_int64() == 6);

  // ---- after: only what came since an answer ----
  const std::string since(everything.at("position").as_string());
  const auto got6 = lines_of(co_await get_ok(b.routes, "/api/events?ns=jobs&after=" + since));
  BOOST_TEST(got6.empty());
  const auto r5 = co_await s.cancel("d");
  BOOST_TEST(r5);
  const auto news = co_await get_ok(b.routes, "/api/events?ns=jobs&after=" + since);
  BOOST_TEST(lines_of(news) == (lines{"cancelled d 0"}));
  const std::string later(news.at("position").as_string());
  BOOST_TEST(later != since);
  const auto got7 = lines_of(co_await get_ok(b.routes, "/api/events?ns=jobs&after=" + later));
  BOOST_TEST(got7.empty());

  // ---- the metric: what this store wrote ----
  BOOST_TEST(b.events_total("scheduled") == 6);  // 5 schedules, d's reschedule
  BOOST_TEST(b.events_total("started") == 3);
  BOOST_TEST(b.events_total("succeeded") == 1);
  BOOST_TEST(b.events_total("failed") == 1);
  BOOST_TEST(b.events_total("dead") == 1);
  BOOST_TEST(b.events_total("cancelled") == 2);
  BOOST_TEST(sched::events_written(s).total() == 14u);
}

// Each bad request: a 400 whose error names what is wrong.
asio::awaitable<void> bad_requests(board& b) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"/api/events", "missing parameter 'ns'"},
      {"/api/events?ns=nope", "unknown namespace 'nope'"},
      {"/api/events?ns=jobs&kinds=bogus", "'bogus' is not an event kind"},
      {"/api/events?ns=jobs&kinds=failed,", "'' is not an event kind"},
      {"/api/events?ns=jobs&limit=0", "'limit' must be at least 1"},
      {"/api/events?ns=jobs&limit=501", "parameter 'limit' must be an integer from 0 to 500"},
      {"/api/events?ns=jobs&limit=ten", "parameter 'limit' must be an integer from 0 to 500"},
      {"/api/events?ns=jobs&offset=10001", "parameter 'offset' must be an integer from 0 to 10000"},
      {"/api/events?ns=jobs&after=now", "'after' must be the position of an earlier answer"},
      {"/api/events?ns=jobs&after=start", "'after' must be the position of an earlier answer"},
      {"/api/events?ns=jobs&after=x-y", "parameter 'after': "},
      {"/api/events?ns=jobs&after=1-0,2-0", "parameter 'after': "},
  };
  for (const auto& [target, message] : cases) {
    const auto a = co_await get(b.routes, target);
    BOOST_TEST(a.status == 400u, target);
    const std::string error(a.body.at("error").as_string());
    BOOST_TEST(error.find(message) != std::string::npos, target << ": " << error);
  }
}

// A task whose worker dies: the claim that finds the expired lease writes its `failed` (a try
// left: due again, and claimed again by the same claim) or its `dead` event (none left).
template <class Side>
asio::awaitable<void> lease_expiries(Side& side, board& b) {
  auto& s = *side.store;
  const auto now = sched::now();
  co_await add(s, "f", 1, now - 2s);
  co_await add(s, "g", 2, now - 1s);
  const auto first = co_await s.claim(0, 10, 1ms);
  BOOST_TEST_REQUIRE(first.tasks.size() == 2u);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  std::size_t reclaimed = 0;
  while (sched::events_written(s).of(sched::event_kind::dead) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    co_await corvo::sleep_for(5ms);
    const auto again = co_await s.claim(0, 10, 30s);
    reclaimed += again.tasks.size();
  }
  BOOST_TEST(reclaimed == 1u);  // g, its second try
  BOOST_TEST(b.events_total("scheduled") == 2);
  BOOST_TEST(b.events_total("started") == 3);
  BOOST_TEST(b.events_total("succeeded") == 0);
  BOOST_TEST(b.events_total("failed") == 1);
  BOOST_TEST(b.events_total("dead") == 1);
  BOOST_TEST(b.events_total("cancelled") == 0);
  const std::string expired = "lease expired 1 times (worker died or hung)";
  const auto got8 = lines_of(co_await get_ok(b.routes, "/api/events?ns=jobs&task=f"));
  BOOST_TEST(got8 == (lines{"dead f 1 " + expired, "started f 1", "scheduled f 0"}));
  const auto got9 = lines_of(co_await get_ok(b.routes, "/api/events?ns=jobs&task=g"));
  BOOST_TEST(got9 ==
             (lines{"started g 2", "failed g 1 " + expired, "started g 1", "scheduled g 0"}));
}

// Events off: the store writes none, the metric stays 0, and the route says why it has none.
template <class Side>
asio::awaitable<void> events_off(Side& side, board& b) {
  co_await add(*side.store, "a", 3, sched::now() + 1h);
  const auto r6 = co_await side.store->cancel("a");
  BOOST_TEST(r6);
  const auto a = co_await get(b.routes, "/api/events?ns=jobs");
  BOOST_TEST(a.status == 409u);
  BOOST_TEST(a.body.at("events_enabled").as_bool() == false);
  const std::string error(a.body.at("error").as_string());
  BOOST_TEST(error ==
             "task events are off for namespace 'jobs' (scheduler.events.enabled is false): "
             "nothing is recorded to show");
  const auto overview = co_await get_ok(b.routes, "/api/overview");
  BOOST_TEST(overview.at("namespaces").as_array()[0].at("events_enabled").as_bool() == false);
  BOOST_TEST(b.events_total("scheduled") == 0);
  BOOST_TEST(b.events_total("cancelled") == 0);
  BOOST_TEST(sched::events_written(*side.store).total() == 0u);
}

// With several shards the answer merges them: every event once, newest first by event time.
template <class Side>
asio::awaitable<void> several_shards(Side& side, board& b) {
  std::multiset<std::string> expected;
  for (int i = 0; i < 20; ++i) {
    const auto id = "t" + std::to_string(i);
    co_await add(*side.store, id, 3, sched::now() + 1h);
    expected.insert("scheduled " + id + " 0");
    if (i % 2 == 0) {
      const auto r7 = co_await side.store->cancel(id);
      BOOST_TEST(r7);
      expected.insert("cancelled " + id + " 0");
    }
  }
  const auto all = co_await get_ok(b.routes, "/api/events?ns=jobs&limit=500");
  const auto got = lines_of(all);
  BOOST_TEST((std::multiset<std::string>(got.begin(), got.end()) == expected));
  double previous_at = 1e300;
  for (const auto& v : all.at("events").as_array()) {
    const double at = v.at("at_ms").as_double();
    BOOST_TEST(at <= previous_at);
    previous_at = at;
  }
  // Pages of 7 add up to the whole, in the same order.
  lines paged;
  for (int offset = 0; offset < 30; offset += 7) {
    const auto page =
        co_await get_ok(b.routes, "/api/events?ns=jobs&limit=7&offset=" + std::to_string(offset));
    const auto l = lines_of(page);
    paged.insert(paged.end(), l.begin(), l.end());
  }
  BOOST_TEST(paged == got);
  BOOST_TEST(b.events_total("scheduled") == 20);
  BOOST_TEST(b.events_total("cancelled") == 10);
}

template <class Side, class Scenario>
void run_with_board(unsigned shards, bool events_on, Scenario scenario) {
  Side side;
  side.open(shards, events_on);
  board b(*side.store, events_on);
  corvo::test::run(side.context, scenario(side, b), [&] { side.stop(); });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_events)

BOOST_AUTO_TEST_CASE_TEMPLATE(the_route_lists_exactly_the_events_filtered_and_paged, Side,
                              both_stores) {
  run_with_board<Side>(1, true, [](Side& side, board& b) { return five_tasks(side, b); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(bad_parameters_are_400s_naming_them, Side, both_stores) {
  run_with_board<Side>(1, true, [](Side&, board& b) { return bad_requests(b); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(the_metric_counts_the_events_a_claim_writes_for_expired_leases, Side,
                              both_stores) {
  run_with_board<Side>(1, true, [](Side& side, board& b) { return lease_expiries(side, b); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(events_off_is_a_409_that_says_so, Side, both_stores) {
  run_with_board<Side>(1, false, [](Side& side, board& b) { return events_off(side, b); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(several_shards_give_every_event_once_newest_first, Side,
                              both_stores) {
  run_with_board<Side>(4, true, [](Side& side, board& b) { return several_shards(side, b); });
}

BOOST_AUTO_TEST_SUITE_END()
