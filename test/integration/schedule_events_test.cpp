// Task events (events.hpp, docs/scheduler.md "Task events") on both stores, the Redis one on
// a real redis-server: a task's life gives exactly its events, readers resume from a
// position and filter, the cap holds, events off writes nothing, another process (the
// `corvo` CLI) writes and reads them, the scheduler's configuration and dispatcher path.
#include <unistd.h>

#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/mpl/list.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/temp_dir.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace redis = corvo::redis;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;
using sched::event_kind;

namespace {

corvo::test::redis_server& server() {
  static corvo::test::redis_server s;
  return s;
}

std::string fresh_namespace() {
  static int n = 0;
  return "events" + std::to_string(++n);
}

sched::events_options events_on(std::size_t max_len = 10'000) {
  sched::events_options o;
  o.enabled = true;
  o.max_len = max_len;
  return o;
}

/// The memory store, on the real clock.
struct memory_side {
  static constexpr bool is_redis = false;
  asio::io_context context;
  std::unique_ptr<sched::memory_store> store;

  void open(unsigned shards, sched::events_options events) {
    store = std::make_unique<sched::memory_store>(context.get_executor(), shards);
    store->set_events(std::move(events));
  }
  void stop() {}
};

/// The Redis store on the shared server, a fresh namespace.
struct redis_side {
  static constexpr bool is_redis = true;
  asio::io_context context;
  redis::client conn{context.get_executor(), redis::client_config::from_url(server().url())};
  std::unique_ptr<sched::redis_store> store;

  redis_side() {
    asio::co_spawn(context, conn.run(), [](std::exception_ptr) {});
  }
  void open(unsigned shards, sched::events_options events) {
    sched::redis_store_options o;
    o.name_space = fresh_namespace();
    o.shards = shards;
    o.events = std::move(events);
    store = std::make_unique<sched::redis_store>(
        conn, redis::client_config::from_url(server().url()), std::move(o));
  }
  void stop() { conn.cancel(); }
};

using both_stores = boost::mpl::list<memory_side, redis_side>;

template <class Side, class Scenario>
void run_scenario(Scenario scenario) {
  Side side;
  corvo::test::run(side.context, scenario(side), [&] { side.stop(); });
}

sched::task make_task(std::string id, std::uint32_t max_attempts,
                      sched::time_point due = sched::now()) {
  sched::task t;
  t.id = std::move(id);
  t.type = "mail";
  t.payload = 1;
  t.due = due;
  t.max_attempts = max_attempts;
  return t;
}

// Reads until `count` events came (or 10 s passed), then what else the reader has at once.
asio::awaitable<std::vector<sched::task_event>> read_events(sched::event_reader& r,
                                                            std::size_t count) {
  std::vector<sched::task_event> out;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    auto got = co_await r.read(1000, 500ms);
    out.insert(out.end(), got.begin(), got.end());
  }
  co_return out;
}

// Every event a new reader from `query.from` finds now (no waiting).
asio::awaitable<std::vector<sched::task_event>> everything_after(sched::store& s,
                                                                 sched::event_query query) {
  auto r = co_await s.events(query);
  std::vector<sched::task_event> out;
  for (;;) {
    auto got = co_await r->read(1000, 0ms);
    if (got.empty()) {
      co_return out;
    }
    out.insert(out.end(), got.begin(), got.end());
  }
}

// Every event the store holds (a new reader from the oldest, no waiting).
asio::awaitable<std::vector<sched::task_event>> everything(sched::store& s,
                                                           sched::event_query query) {
  query.from = std::string(sched::events_from_start);
  co_return co_await everything_after(s, std::move(query));
}

// "kind/attempt/reason" of each event of `id`, in order.
std::vector<std::string> life_of(const std::vector<sched::task_event>& events,
                                 const std::string& id) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    if (e.task_id == id) {
      std::string line(to_string(e.kind));
      if (e.attempt != 0) {
        line += "/" + std::to_string(e.attempt);
      }
      if (!e.reason.empty()) {
        line += "/" + e.reason;
      }
      out.push_back(std::move(line));
    }
  }
  return out;
}

using lines = std::vector<std::string>;

// One claim of `id`'s shard that must return exactly `id`.
template <class Side>
asio::awaitable<sched::claimed_task> claim_one(Side& side, const std::string& id,
                                               std::chrono::milliseconds lease = 10s) {
  const auto shard = side.store->shard_of(id);
  auto claimed = co_await side.store->claim(shard, 10, lease);
  BOOST_REQUIRE_EQUAL(claimed.tasks.size(), 1u);
  BOOST_REQUIRE_EQUAL(claimed.tasks[0].work.id, id);
  co_return claimed.tasks[0];
}

template <class Side>
asio::awaitable<void> fail_run(Side& side, const sched::claimed_task& c, std::string error,
                               bool retry) {
  sched::failure f;
  f.id = c.work.id;
  f.token = c.token;
  f.error = std::move(error);
  if (retry) {
    f.retry_in = std::chrono::microseconds(0);
  }
  BOOST_TEST(co_await side.store->nack(c.shard, std::move(f)));
}

template <class Side>
asio::awaitable<void> finish_run(Side& side, const sched::claimed_task& c) {
  std::vector<sched::completion> done(1);
  done[0].id = c.work.id;
  done[0].token = c.token;
  BOOST_TEST(co_await side.store->ack(c.shard, std::move(done)) == 1u);
}

// The lives of four tasks through the store calls a dispatcher makes.
template <class Side>
asio::awaitable<void> live_four_tasks(Side& side) {
  const auto a = make_task("a", 3);
  co_await side.store->schedule(a);
  auto run = co_await claim_one(side, "a");
  co_await fail_run(side, run, "boom", true);
  run = co_await claim_one(side, "a");
  co_await finish_run(side, run);

  const auto b = make_task("b", 2);
  co_await side.store->schedule(b);
  run = co_await claim_one(side, "b");
  co_await fail_run(side, run, "e1", true);
  run = co_await claim_one(side, "b");
  co_await fail_run(side, run, "e2", true);  // the dispatcher says retry; attempts are used up
                                             // only by the lease path: see d
  co_await side.store->cancel("b");

  const auto c = make_task("c", 3, sched::now() + 1h);
  co_await side.store->schedule(c);
  BOOST_TEST(co_await side.store->cancel("c"));

  const auto d = make_task("d", 1);
  co_await side.store->schedule(d);
  run = co_await claim_one(side, "d", 50ms);  // the worker "dies": its lease runs out
  co_await corvo::sleep_for(120ms);
  const auto again = co_await side.store->claim(side.store->shard_of("d"), 10, 10s);
  BOOST_TEST(again.tasks.empty());  // its one attempt was used: dead, not claimed

  const auto e = make_task("e", 5);
  co_await side.store->schedule(e);
  run = co_await claim_one(side, "e");
  co_await fail_run(side, run, "permanent", false);
}

const lines life_a{"scheduled", "started/1", "failed/1/boom", "started/2", "succeeded/2"};
const lines life_b{"scheduled", "started/1",   "failed/1/e1",
                   "started/2", "failed/2/e2", "cancelled"};
const lines life_c{"scheduled", "cancelled"};
const lines life_d{"scheduled", "started/1", "dead/1/lease expired 1 times (worker died or hung)"};
const lines life_e{"scheduled", "started/1", "dead/1/permanent"};
constexpr std::size_t all_events = 5 + 6 + 2 + 3 + 3;

}  // namespace

BOOST_AUTO_TEST_SUITE(store_events)

// Each task's life gives exactly its events, in order, to a reader started before (from
// now) and to one started after (from the oldest); an event reader from now does not see
// what came before it; filters by task and kind; events carry the time, source and due.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_tasks_life_gives_exactly_its_events, Side, both_stores) {
  run_scenario<Side>([](Side& side) -> asio::awaitable<void> {
    side.open(4, events_on());
    const auto before = make_task("before", 3, sched::now() + 1h);
    co_await side.store->schedule(before);  // not seen by a reader from now
    sched::event_query from_now;
    auto live = co_await side.store->events(from_now);
    const auto t0 = sched::now();
    co_await live_four_tasks(side);

    const auto seen = co_await read_events(*live, all_events);
    BOOST_TEST(seen.size() == all_events);
    BOOST_TEST(life_of(seen, "before").empty());
    BOOST_TEST(life_of(seen, "a") == life_a, boost::test_tools::per_element());
    BOOST_TEST(life_of(seen, "b") == life_b, boost::test_tools::per_element());
    BOOST_TEST(life_of(seen, "c") == life_c, boost::test_tools::per_element());
    BOOST_TEST(life_of(seen, "d") == life_d, boost::test_tools::per_element());
    BOOST_TEST(life_of(seen, "e") == life_e, boost::test_tools::per_element());
    for (const auto& e : seen) {
      BOOST_TEST(e.type == "mail");
      BOOST_TEST(!e.source.empty());
      BOOST_TEST(e.shard == side.store->shard_of(e.task_id));
      BOOST_TEST((e.at >= t0 - 1s && e.at <= sched::now() + 1s));  // the store's clock
      BOOST_TEST(e.due.has_value() == (e.kind == event_kind::scheduled));
    }
    // A scheduled event carries the due time exactly (c: in an hour).
    for (const auto& e : seen) {
      if (e.task_id == "c" && e.kind == event_kind::scheduled) {
        BOOST_TEST((*e.due - sched::now() > 59min));
      }
    }

    // A reader from the oldest: the same events plus `before`'s, nothing else.
    sched::event_query all;
    const auto stored = co_await everything(*side.store, all);
    BOOST_TEST(stored.size() == all_events + 1);
    BOOST_TEST(life_of(stored, "before") == lines{"scheduled"}, boost::test_tools::per_element());
    BOOST_TEST(life_of(stored, "b") == life_b, boost::test_tools::per_element());

    // Filters.
    sched::event_query only_a;
    only_a.task_id = "a";
    const auto of_a = co_await everything(*side.store, only_a);
    BOOST_TEST(life_of(of_a, "a") == life_a, boost::test_tools::per_element());
    BOOST_TEST(of_a.size() == life_a.size());
    sched::event_query dead_only;
    dead_only.kinds = {event_kind::dead, event_kind::cancelled};
    const auto dead = co_await everything(*side.store, dead_only);
    BOOST_TEST(dead.size() == 4u);  // b and c cancelled, d and e dead
    sched::event_query other_type;
    other_type.type = "sms";
    const auto of_sms = co_await everything(*side.store, other_type);
    BOOST_TEST(of_sms.empty());
  });
}

// A position resumes exactly after the last event read: nothing missed or repeated, also
// when the filters skipped events; a position of another form is refused.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_position_resumes_where_a_reader_stopped, Side, both_stores) {
  run_scenario<Side>([](Side& side) -> asio::awaitable<void> {
    side.open(4, events_on());
    co_await live_four_tasks(side);
    sched::event_query all;
    const auto stored = co_await everything(*side.store, all);
    BOOST_REQUIRE_EQUAL(stored.size(), all_events);

    all.from = std::string(sched::events_from_start);
    auto first = co_await side.store->events(all);
    auto head = co_await first->read(7, 0ms);
    BOOST_REQUIRE_EQUAL(head.size(), 7u);
    sched::event_query rest;
    rest.from = first->position();
    const auto tail = co_await everything_after(*side.store, rest);
    BOOST_TEST(tail.size() == all_events - 7);
    head.insert(head.end(), tail.begin(), tail.end());
    for (const auto& id : {"a", "b", "c", "d", "e"}) {
      BOOST_TEST(life_of(head, id) == life_of(stored, id), boost::test_tools::per_element());
    }

    // next() one by one, then resume.
    auto one = co_await side.store->events(all);
    const auto e1 = co_await one->next();
    const auto e2 = co_await one->next();
    rest.from = one->position();
    const auto after_two = co_await everything_after(*side.store, rest);
    BOOST_TEST(after_two.size() == all_events - 2);
    BOOST_TEST(after_two.front().position != e1.position);
    BOOST_TEST(after_two.front().position != e2.position);

    sched::event_query bad;
    bad.from = "1-0,2-0";  // two parts for four shards
    BOOST_CHECK_THROW(co_await side.store->events(bad), std::invalid_argument);
    bad.from = "x,y,z,w";
    BOOST_CHECK_THROW(co_await side.store->events(bad), std::invalid_argument);
  });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(store_events_limits)

// The cap: the memory store keeps exactly max_len events per shard; Redis trims with
// MAXLEN ~ (whole stream nodes), so a stream keeps the newest events, at least max_len and
// at most max_len + stream-node-max-entries of them.
BOOST_AUTO_TEST_CASE_TEMPLATE(the_cap_holds, Side, both_stores) {
  run_scenario<Side>([](Side& side) -> asio::awaitable<void> {
    side.open(1, events_on(20));
    constexpr int count = 300;
    for (int i = 0; i < count; ++i) {
      const auto t = make_task("t-" + std::to_string(1000 + i), 3, sched::now() + 1h);
      co_await side.store->schedule(t);
    }
    sched::event_query all;
    const auto stored = co_await everything(*side.store, all);
    std::size_t upper = 20;
    if constexpr (Side::is_redis) {
      const auto node = server().cli("CONFIG", "GET", "stream-node-max-entries");
      upper += std::stoul(node.substr(node.find('\n') + 1));
      const auto xlen = server().cli("XLEN", side.store->events_key(0));
      BOOST_TEST(std::stoul(xlen) == stored.size());
    }
    BOOST_TEST(stored.size() >= 20u);
    BOOST_TEST(stored.size() <= upper);
    BOOST_TEST(stored.size() < std::size_t{count});
    if constexpr (!Side::is_redis) {
      BOOST_TEST(stored.size() == 20u);
    }
    // The newest, in order, without a gap.
    for (std::size_t i = 0; i < stored.size(); ++i) {
      const auto expected = 1000 + count - static_cast<int>(stored.size()) + static_cast<int>(i);
      BOOST_TEST(stored[i].task_id == "t-" + std::to_string(expected));
    }
  });
}

// Events off (the default): nothing is written, not even an empty stream.
BOOST_AUTO_TEST_CASE_TEMPLATE(events_off_write_nothing, Side, both_stores) {
  run_scenario<Side>([](Side& side) -> asio::awaitable<void> {
    side.open(4, sched::events_options{});
    co_await live_four_tasks(side);
    sched::event_query all;
    const auto none = co_await everything(*side.store, all);
    BOOST_TEST(none.empty());
    if constexpr (Side::is_redis) {
      for (unsigned s = 0; s < 4; ++s) {
        BOOST_TEST(server().cli("EXISTS", side.store->events_key(s)) == "0");
      }
      const auto ns = side.store->options().name_space;
      BOOST_TEST(server().cli("KEYS", "{" + ns + ":*}:events") == "");
      BOOST_TEST(server().cli("KEYS", "{" + ns + ":*}:dead") != "");  // the namespace was used
    }
  });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(configuration)

BOOST_AUTO_TEST_CASE(events_keys_are_read_and_checked) {
  using sched::scheduler_options;
  const auto o = scheduler_options::from(corvo::config::from_string(
      R"({"scheduler": {"events": {"enabled": true, "max_len": 500}}})"));
  BOOST_TEST(o.events.enabled);
  BOOST_TEST(o.events.max_len == 500u);
  BOOST_TEST(o.redis.events.enabled);
  const auto off = scheduler_options::from(corvo::config{});
  BOOST_TEST(!off.events.enabled);
  BOOST_TEST(off.events.max_len == 10'000u);
  const auto refused = [](const std::string& events, const std::string& key,
                          const std::string& text) {
    BOOST_CHECK_EXCEPTION(
        scheduler_options::from(
            corvo::config::from_string(R"({"scheduler": {"events": )" + events + "}}")),
        corvo::config_error, [&](const corvo::config_error& e) {
          BOOST_TEST_INFO(e.what());
          return e.key() == key && std::string(e.what()).find(text) != std::string::npos;
        });
  };
  refused(R"({"max_len": 0})", "scheduler.events.max_len", "between 1 and 100000000");
  refused(R"({"max_len": 100000001})", "scheduler.events.max_len", "between 1 and 100000000");
  refused(R"({"max_length": 5})", "scheduler.events.max_length", "did you mean 'max_len'");
  BOOST_CHECK_THROW(scheduler_options::from(corvo::config::from_string(
                        R"({"scheduler": {"events": {"enabled": "maybe"}}})")),
                    corvo::config_error);
  BOOST_CHECK_THROW(scheduler_options::from(corvo::config::from_string(
                        R"({"scheduler": {"events": {"max_len": -3}}})")),
                    corvo::config_error);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// Fails each task's first try, succeeds the second; type "bad" fails permanently.
struct flaky {
  std::map<std::string, int>* tries;
  asio::awaitable<void> operator()(const sched::claimed_task& t) const {
    if (t.work.type == "bad") {
      throw sched::permanent_error("no way");
    }
    if (++(*tries)[t.work.id] == 1) {
      throw std::runtime_error("first try fails");
    }
    co_return;
  }
};

asio::awaitable<void> run_scheduler(sched::scheduler& s) {
  co_await s.run();
}

std::string app_config(const std::string& ns) {
  return R"({"redis": {"url": ")" + server().url() +
         R"("}, "scheduler": {"provider": "redis", "namespace": ")" + ns +
         R"(", "shards": 4, "retry_initial": "10ms", "retry_max": "10ms",
            "events": {"enabled": true, "max_len": 1000}}})";
}

std::string this_process_suffix() {
  return ":" + std::to_string(::getpid());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_processes)

// Through the scheduler (configuration, dispatcher, handlers): a task failing once gives
// scheduled, started, failed, started, succeeded; a permanent failure gives dead.
BOOST_AUTO_TEST_CASE(the_scheduler_writes_events_of_its_runs) {
  asio::io_context context;
  redis::client conn(context.get_executor(), redis::client_config::from_url(server().url()));
  asio::co_spawn(context, conn.run(), [](std::exception_ptr) {});
  const auto cfg = corvo::config::from_string(app_config(fresh_namespace()));
  sched::scheduler s(context.get_executor(), sched::scheduler_options::from(cfg), &conn,
                     redis::client_config::from_url(server().url()));
  std::map<std::string, int> tries;
  s.handlers().on_task("mail", flaky{&tries});
  s.handlers().on_task("bad", flaky{&tries});
  corvo::test::run(
      context,
      [&]() -> asio::awaitable<void> {
        sched::event_query from_now;
        auto events = co_await s.events(from_now);
        auto ex = co_await asio::this_coro::executor;
        corvo::task_group group(ex);
        co_await group.spawn(run_scheduler(s));
        co_await s.schedule("ok", "mail", json::value(1), sched::now());
        co_await s.schedule("doomed", "bad", json::value(1), sched::now());
        const auto seen = co_await read_events(*events, 8);
        group.cancel();
        try {
          co_await group.join();
        } catch (const boost::system::system_error&) {
        }
        BOOST_TEST(seen.size() == 8u);
        BOOST_TEST(
            life_of(seen, "ok") == (lines{"scheduled", "started/1", "failed/1/first try fails",
                                          "started/2", "succeeded/2"}),
            boost::test_tools::per_element());
        BOOST_TEST(life_of(seen, "doomed") == (lines{"scheduled", "started/1", "dead/1/no way"}),
                   boost::test_tools::per_element());
        for (const auto& e : seen) {
          BOOST_TEST(e.source.ends_with(this_process_suffix()));
        }
      }(),
      [&] { conn.cancel(); });
}

// Another process: the `corvo` CLI writes events (its --config enables them) that a reader
// here sees, with its own source; it reads (--json, --task) what this process wrote, and
// --follow from a position prints new events as they come.
BOOST_AUTO_TEST_CASE(events_cross_processes) {
  corvo::test::temp_dir dir("events-cli");
  const auto ns = fresh_namespace();
  const auto config_path = dir.path() / "app.json";
  std::ofstream(config_path) << app_config(ns);
  const auto corvo_cli = [&](std::vector<std::string> words) {
    words.insert(words.begin(), corvo::test::corvo_program().string());
    words.insert(words.end(), {"--config", config_path.string()});
    return corvo::test::run_command_checked(words, 30s);
  };

  asio::io_context context;
  redis::client conn(context.get_executor(), redis::client_config::from_url(server().url()));
  asio::co_spawn(context, conn.run(), [](std::exception_ptr) {});
  sched::redis_store_options o;
  o.name_space = ns;
  o.shards = 4;
  o.events = events_on(1000);
  sched::redis_store store(conn, redis::client_config::from_url(server().url()), o);
  corvo::test::run(
      context,
      [&]() -> asio::awaitable<void> {
        sched::event_query from_now;
        auto events = co_await store.events(from_now);
        // The CLI writes.
        corvo_cli({"schedule", "add", "--id", "cli-1", "--type", "mail", "--in", "1h"});
        corvo_cli({"schedule", "cancel", "cli-1"});
        const auto seen = co_await read_events(*events, 2);
        BOOST_TEST(life_of(seen, "cli-1") == (lines{"scheduled", "cancelled"}),
                   boost::test_tools::per_element());
        for (const auto& e : seen) {  // written by the two CLI processes, not this one
          BOOST_TEST(!e.source.empty());
          BOOST_TEST(!e.source.ends_with(this_process_suffix()));
        }
        // The CLI reads what this process writes.
        const auto local = make_task("local-1", 3);
        co_await store.schedule(local);
        const auto shard = store.shard_of("local-1");
        auto claimed = co_await store.claim(shard, 10, 10s);
        BOOST_REQUIRE_EQUAL(claimed.tasks.size(), 1u);
        std::vector<sched::completion> done(1);
        done[0].id = "local-1";
        done[0].token = claimed.tasks[0].token;
        co_await store.ack(shard, std::move(done));
        const auto out = corvo_cli({"schedule", "events", "--json", "--task", "local-1"});
        std::vector<json::object> printed;
        std::istringstream in(out);
        for (std::string line; std::getline(in, line);) {
          printed.push_back(json::parse(line).as_object());
        }
        BOOST_REQUIRE_EQUAL(printed.size(), 4u);  // three events and the position
        const char* kinds[] = {"scheduled", "started", "succeeded"};
        for (int i = 0; i < 3; ++i) {
          BOOST_TEST(printed[i].at("kind").as_string() == kinds[i]);
          BOOST_TEST(printed[i].at("task").as_string() == "local-1");
          BOOST_TEST(
              std::string(printed[i].at("source").as_string()).ends_with(this_process_suffix()));
        }
        BOOST_TEST(printed[1].at("attempt").as_int64() == 1);
        const std::string position(printed[3].at("position").as_string());

        // --follow from that position: only what comes after it.
        corvo::test::child_process follower(
            {corvo::test::corvo_program().string(), "schedule", "events", "--follow", "--json",
             "--from", position, "--config", config_path.string()},
            dir.path(), dir.path() / "follow.log");
        const auto next = make_task("follow-1", 3, sched::now() + 1h);
        co_await store.schedule(next);
        co_await store.cancel("follow-1");
        std::vector<std::string> follow_lines;
        const bool both = co_await corvo::test::eventually(
            [&] {
              std::ifstream log(dir.path() / "follow.log");
              follow_lines.clear();
              for (std::string line; std::getline(log, line);) {
                follow_lines.push_back(line);
              }
              return follow_lines.size() >= 2;
            },
            20s);
        BOOST_TEST(both);
        BOOST_REQUIRE_EQUAL(follow_lines.size(), 2u);
        BOOST_TEST(json::parse(follow_lines[0]).at("task").as_string() == "follow-1");
        BOOST_TEST(json::parse(follow_lines[0]).at("kind").as_string() == "scheduled");
        BOOST_TEST(json::parse(follow_lines[1]).at("kind").as_string() == "cancelled");
      }(),
      [&] { conn.cancel(); });
}

BOOST_AUTO_TEST_SUITE_END()
