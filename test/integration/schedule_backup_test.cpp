// `corvo schedule export` / `corvo schedule import` against a real redis-server, run as
// separate processes: a lossless round trip of 100,000 tasks (recurring, retried and dead
// ones included) into a namespace with another shard count, a task exported in flight, and
// bad lines reported by number without losing the good ones (a bad priority included), and
// priorities kept through the round trip.
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/temp_dir.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace redis = corvo::redis;
using namespace corvo::schedule;
using namespace std::chrono_literals;

namespace {

// `corvo WORDS --redis URL --namespace NS --shards N`.
corvo::test::command_result corvo_cli(std::vector<std::string> words, const std::string& url,
                                      const std::string& ns, unsigned shards) {
  words.insert(words.begin(), corvo::test::corvo_program().string());
  words.insert(words.end(),
               {"--redis", url, "--namespace", ns, "--shards", std::to_string(shards)});
  return corvo::test::run_command(words, 60s);
}

std::vector<std::string> sorted_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

// The test's own calls to the store of `ns`: each run() on a fresh client (a client is not
// run again once cancelled).
struct direct {
  std::string url;
  std::string ns;
  unsigned shards;

  template <class T>
  T run(std::function<asio::awaitable<T>(redis_store&)> op) {
    asio::io_context ctx;
    redis::client conn(ctx.get_executor(), redis::client_config::from_url(url));
    redis_store store(conn, redis::client_config::from_url(url),
                      {.name_space = ns, .shards = shards});
    asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
    return corvo::test::run(ctx, op(store), [&] { conn.cancel(); });
  }
};

// `bulk` waiting tasks (every tenth recurring every 90 s, every tenth + 1 on a zoned cron,
// every seventh with a run timeout, every 13th with its own retry backoff, payloads with quotes,
// markup, newlines and non-ASCII), then 4 tasks due now claimed and failed: dead-1 and dead-2
// dead-lettered, retry-1 and retry-2 sent back for 2 h with an attempt and an error (due moved,
// occurrence kept).
asio::awaitable<void> fill(redis_store& s, std::size_t bulk) {
  const auto base = now() + 1h;
  std::vector<task> tasks;
  tasks.reserve(bulk);
  for (std::size_t i = 0; i < bulk; ++i) {
    task t;
    t.id = "t-" + std::to_string(i);
    t.type = i % 3 == 0 ? "email" : i % 3 == 1 ? "report" : "sms.send";
    t.payload = json::object{{"n", i}, {"text", "say \"hi\" <script>x</script>\n\u00e9\u4e2d"}};
    t.due = base + std::chrono::milliseconds(i);
    t.max_attempts = static_cast<std::uint32_t>(1 + i % 5);
    if (i % 10 == 0) {
      t.repeat = interval{90s};
    } else if (i % 10 == 1) {
      t.repeat = cron{"0 9 * * MON-FRI", "Europe/Berlin"};
    }
    if (i % 7 == 0) {
      t.timeout = 1500ms;
    }
    if (i % 13 == 0) {
      t.retry = retry_backoff{250ms, 90s, 1.5, 0.25};
    }
    tasks.push_back(std::move(t));
  }
  co_await s.schedule_many(std::move(tasks));
  for (const char* id : {"dead-1", "dead-2", "retry-1", "retry-2"}) {
    task t;
    t.id = id;
    t.type = "charge";
    t.payload = json::string(id);
    t.due = now() - 1s;
    t.max_attempts = 3;
    co_await s.schedule(t);
  }
  std::size_t failed = 0;
  for (unsigned shard = 0; shard < s.shards(); ++shard) {
    auto claimed = co_await s.claim(shard, 100, 60s);
    for (auto& c : claimed.tasks) {
      const bool dead = c.work.id.starts_with("dead");
      failure f{c.work.id, c.token, "boom <" + c.work.id + ">", std::nullopt};
      if (!dead) {
        f.retry_in = std::chrono::microseconds(2h);
      }
      BOOST_REQUIRE(co_await s.nack(shard, f));
      ++failed;
    }
  }
  BOOST_REQUIRE_EQUAL(failed, 4u);
}

asio::awaitable<std::optional<task>> get(redis_store& s, std::string id) {
  co_return co_await s.get(std::move(id));
}

asio::awaitable<void> schedule_and_claim(redis_store& s, task t) {
  co_await s.schedule(t);
  auto claimed = co_await s.claim(s.shard_of(t.id), 10, 60s);
  BOOST_REQUIRE_EQUAL(claimed.tasks.size(), 1u);
}

asio::awaitable<store_stats> stats(redis_store& s) {
  co_return co_await s.stats();
}

// Schedules a task due a second ago at `level`.
asio::awaitable<void> schedule_at_level(redis_store& s, std::string id, priority level) {
  task t;
  t.id = std::move(id);
  t.type = "alert";
  t.payload = json::string(t.id);
  t.due = now() - 1s;
  t.priority = level;
  co_await s.schedule(std::move(t));
}

asio::awaitable<void> schedule_three_levels(redis_store& s) {
  co_await schedule_at_level(s, "low-1", priority::low);
  co_await schedule_at_level(s, "normal-1", priority::normal);
  co_await schedule_at_level(s, "high-1", priority::high);
}

// Claims the shard's due tasks one at a time: their ids in claim order.
asio::awaitable<std::vector<std::string>> claim_one_by_one(redis_store& s) {
  std::vector<std::string> order;
  for (;;) {
    auto claimed = co_await s.claim(0, 1, 60s);
    if (claimed.tasks.empty()) {
      co_return order;
    }
    order.push_back(claimed.tasks.front().work.id);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(schedule_backup)

BOOST_AUTO_TEST_CASE(a_round_trip_of_100000_tasks_is_lossless) {
  constexpr std::size_t bulk = 100'000;
  corvo::test::redis_server server;
  corvo::test::temp_dir dir("schedule_backup");
  const auto started = std::chrono::steady_clock::now();
  const auto phase = [&](const char* what) {
    BOOST_TEST_MESSAGE(
        what << " after "
             << std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()
             << " s");
  };
  direct src{server.url(), "src", 4};
  src.run<void>([](redis_store& s) { return fill(s, bulk); });
  phase("filled");
  const auto first = corvo_cli({"schedule", "export"}, server.url(), "src", 4);
  phase("exported");
  BOOST_REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  BOOST_TEST(first.err.find("100000 tasks\n") != std::string::npos, first.err);  // progress
  BOOST_TEST(first.err.find("100004 tasks exported") != std::string::npos, first.err);
  const auto file = dir.path() / "tasks.jsonl";
  write_file(file, first.out);

  // Into another namespace with twice the shards: every task lands on its new shard.
  const auto imported = corvo_cli({"schedule", "import", file.string()}, server.url(), "dst", 8);
  BOOST_REQUIRE_MESSAGE(imported.exit_code == 0, imported.err);
  BOOST_TEST(imported.err.find("100004 tasks imported") != std::string::npos, imported.err);
  phase("imported");

  const auto second = corvo_cli({"schedule", "export", "--quiet"}, server.url(), "dst", 8);
  BOOST_REQUIRE_MESSAGE(second.exit_code == 0, second.err);
  BOOST_TEST(second.err.empty(), second.err);
  phase("exported again");
  const auto before = sorted_lines(first.out);
  const auto after = sorted_lines(second.out);
  BOOST_REQUIRE_EQUAL(before.size(), bulk + 4);
  BOOST_TEST(before == after);  // every field of every task, byte for byte

  // What the lines hold (so the equality above cannot pass on empty or partial lines).
  direct dst{server.url(), "dst", 8};
  const auto st = dst.run<store_stats>(stats);
  BOOST_TEST(st.scheduled == bulk + 2);
  BOOST_TEST(st.dead == 2u);
  const auto dead = dst.run<std::optional<task>>([](redis_store& s) { return get(s, "dead-2"); });
  BOOST_REQUIRE(dead.has_value());
  BOOST_TEST((dead->state == task_state::dead));
  BOOST_TEST(dead->last_error == "boom <dead-2>");
  BOOST_TEST(dead->attempts == 1u);
  const auto retried =
      dst.run<std::optional<task>>([](redis_store& s) { return get(s, "retry-1"); });
  BOOST_REQUIRE(retried.has_value());
  BOOST_TEST((retried->state == task_state::scheduled));
  BOOST_TEST(retried->attempts == 1u);
  BOOST_TEST(retried->last_error == "boom <retry-1>");
  BOOST_TEST((retried->due - retried->occurrence > 1h));  // the retry moved due, not occurrence
  const auto zoned = dst.run<std::optional<task>>([](redis_store& s) { return get(s, "t-99991"); });
  BOOST_REQUIRE(zoned.has_value());
  BOOST_TEST((zoned->repeat == recurrence{cron{"0 9 * * MON-FRI", "Europe/Berlin"}}));
  BOOST_TEST(zoned->max_attempts == 2u);
  BOOST_TEST((zoned->timeout == std::nullopt));
  const auto timed = dst.run<std::optional<task>>([](redis_store& s) { return get(s, "t-99995"); });
  BOOST_REQUIRE(timed.has_value());
  BOOST_TEST((timed->timeout == std::optional<std::chrono::milliseconds>(1500ms)));
  BOOST_TEST((timed->retry == std::nullopt));
  const auto backoff =
      dst.run<std::optional<task>>([](redis_store& s) { return get(s, "t-99996"); });
  BOOST_REQUIRE(backoff.has_value());
  const retry_backoff expected_backoff{250ms, 90s, 1.5, 0.25};
  BOOST_TEST((backoff->retry == std::optional<retry_backoff>(expected_backoff)));
  BOOST_TEST(timed->payload.as_object().at("text").as_string() ==
             "say \"hi\" <script>x</script>\n\u00e9\u4e2d");
}

BOOST_AUTO_TEST_CASE(a_task_exported_in_flight_is_imported_waiting_at_its_occurrence) {
  corvo::test::redis_server server;
  corvo::test::temp_dir dir("schedule_backup_in_flight");
  direct src{server.url(), "src", 2};
  task t;
  t.id = "running";
  t.type = "charge";
  t.payload = json::object{{"amount", 5}};
  t.due = now() - 1s;
  src.run<void>([t](redis_store& s) { return schedule_and_claim(s, t); });
  const auto exported = corvo_cli({"schedule", "export", "--quiet"}, server.url(), "src", 2);
  BOOST_REQUIRE_MESSAGE(exported.exit_code == 0, exported.err);
  const auto line = json::parse(exported.out).as_object();
  BOOST_TEST(line.at("state").as_string() == "in_flight");
  BOOST_TEST(!line.contains("due"));
  BOOST_TEST(line.at("attempts").as_int64() == 1);
  const auto file = dir.path() / "tasks.jsonl";
  write_file(file, exported.out);
  const auto imported = corvo_cli({"schedule", "import", file.string()}, server.url(), "dst", 2);
  BOOST_REQUIRE_MESSAGE(imported.exit_code == 0, imported.err);
  direct dst{server.url(), "dst", 2};
  const auto back = dst.run<std::optional<task>>([](redis_store& s) { return get(s, "running"); });
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST((back->state == task_state::scheduled));
  BOOST_TEST((back->due == t.due));  // its occurrence: it runs again at once
  BOOST_TEST((back->occurrence == t.due));
  BOOST_TEST(back->attempts == 1u);
  BOOST_TEST(back->payload.as_object().at("amount").as_int64() == 5);
}

BOOST_AUTO_TEST_CASE(bad_lines_are_reported_by_number_and_lose_nothing) {
  corvo::test::redis_server server;
  corvo::test::temp_dir dir("schedule_backup_bad");
  const auto line = [](std::string id) {
    return R"({"id":")" + id + R"(","type":"t","due":"2030-01-01T00:00:00Z","payload":1})";
  };
  const std::string text = line("a") + "\n" +  // 1
                           "{not json\n" +     // 2
                           line("b") + "\n" +  // 3
                           "\n" +              // 4 blank
                           R"({"id":"c","due":"2030-01-01T00:00:00Z"})"
                           "\n" +  // 5 no type
                           R"({"id":"d","type":"t","due":"tomorrow"})"
                           "\n" +  // 6 bad time
                           R"({"id":"e","type":"t","state":"dead","colour":1})"
                           "\n" +  // 7
                           line("f") +
                           "\n";  // 8
  const auto file = dir.path() / "bad.jsonl";
  write_file(file, text);
  direct store{server.url(), "ns", 2};

  // Default: stop at the first bad line; the lines before it are imported.
  auto r = corvo_cli({"schedule", "import", file.string(), "--quiet"}, server.url(), "ns", 2);
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find(file.string() + ":2: not JSON") != std::string::npos, r.err);
  BOOST_TEST(r.err.find(":3:") == std::string::npos, r.err);
  BOOST_TEST(r.err.find("stopped at line 2") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("1 tasks imported") != std::string::npos, r.err);
  BOOST_TEST(store.run<store_stats>(stats).scheduled == 1u);

  // --keep-going: every bad line reported with its number and reason, every good one imported.
  r = corvo_cli({"schedule", "import", file.string(), "--keep-going", "--quiet"}, server.url(),
                "ns", 2);
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find(":2: not JSON") != std::string::npos, r.err);
  BOOST_TEST(r.err.find(":5: no \"type\"") != std::string::npos, r.err);
  BOOST_TEST(r.err.find(":6: \"due\" 'tomorrow' is not a time") != std::string::npos, r.err);
  BOOST_TEST(r.err.find(":7: unknown key \"colour\"") != std::string::npos, r.err);
  BOOST_TEST(r.err.find(":4:") == std::string::npos, r.err);
  BOOST_TEST(r.err.find("3 tasks imported") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("4 line(s) refused") != std::string::npos, r.err);
  BOOST_TEST(store.run<store_stats>(stats).scheduled == 3u);
  for (const char* id : {"a", "b", "f"}) {
    const std::string key = id;
    BOOST_TEST(
        store.run<std::optional<task>>([key](redis_store& s) { return get(s, key); }).has_value(),
        id);
  }
}

// A high, a low and a normal task due together come back with their levels: the lines carry
// them, get reads them, and the imported namespace claims them high, normal, low.
BOOST_AUTO_TEST_CASE(priorities_survive_a_round_trip) {
  corvo::test::redis_server server;
  corvo::test::temp_dir dir("schedule_backup_priority");
  direct src{server.url(), "src", 2};
  src.run<void>(schedule_three_levels);
  const auto exported = corvo_cli({"schedule", "export", "--quiet"}, server.url(), "src", 2);
  BOOST_REQUIRE_MESSAGE(exported.exit_code == 0, exported.err);
  std::map<std::string, std::string> level_in_line;
  for (const auto& text : sorted_lines(exported.out)) {
    const auto line = json::parse(text).as_object();
    level_in_line[std::string(line.at("id").as_string())] =
        line.contains("priority") ? std::string(line.at("priority").as_string()) : "";
  }
  const std::map<std::string, std::string> expected_levels{
      {"high-1", "high"}, {"low-1", "low"}, {"normal-1", ""}};
  BOOST_TEST((level_in_line == expected_levels));  // normal is not written

  const auto file = dir.path() / "tasks.jsonl";
  write_file(file, exported.out);
  const auto imported = corvo_cli({"schedule", "import", file.string()}, server.url(), "dst", 1);
  BOOST_REQUIRE_MESSAGE(imported.exit_code == 0, imported.err);
  BOOST_TEST(imported.err.find("3 tasks imported") != std::string::npos, imported.err);
  direct dst{server.url(), "dst", 1};
  for (const auto& [id, level] : {std::pair{"high-1", priority::high},
                                  {"low-1", priority::low},
                                  {"normal-1", priority::normal}}) {
    const std::string key = id;
    const auto back = dst.run<std::optional<task>>([key](redis_store& s) { return get(s, key); });
    BOOST_REQUIRE(back.has_value());
    BOOST_TEST((back->priority == level), id);
  }
  const auto order = dst.run<std::vector<std::string>>(claim_one_by_one);
  BOOST_TEST((order == std::vector<std::string>{"high-1", "normal-1", "low-1"}));
}

// A line with a bad priority is refused with its line number, as any bad line: by default
// the import stops there (the lines before it imported, the bad one and the rest not written
// at all); --keep-going imports every other line.
BOOST_AUTO_TEST_CASE(a_bad_priority_is_refused_with_its_line_number) {
  corvo::test::redis_server server;
  corvo::test::temp_dir dir("schedule_backup_bad_priority");
  const auto line = [](std::string id, std::string level) {
    return R"({"id":")" + id + R"(","type":"t","due":"2030-01-01T00:00:00Z","priority":")" + level +
           R"(","payload":1})" + "\n";
  };
  const auto file = dir.path() / "priorities.jsonl";
  write_file(file, line("a", "high") + line("b", "low") + line("c", "urgent") + line("d", "high"));
  direct store{server.url(), "ns", 2};
  const auto exists = [&](std::string id) {
    return store.run<std::optional<task>>([id](redis_store& s) { return get(s, id); }).has_value();
  };

  auto r = corvo_cli({"schedule", "import", file.string(), "--quiet"}, server.url(), "ns", 2);
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find(file.string() + ":3: priority: 'urgent' is not one of low, normal, high") !=
                 std::string::npos,
             r.err);
  BOOST_TEST(r.err.find("stopped at line 3") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("2 tasks imported") != std::string::npos, r.err);
  BOOST_TEST(store.run<store_stats>(stats).scheduled == 2u);
  BOOST_TEST(exists("a"));
  BOOST_TEST(exists("b"));
  BOOST_TEST(!exists("c"));  // nothing of the bad line
  BOOST_TEST(!exists("d"));  // not read
  // Nothing but the two tasks' keys: no record, due entry or window of "c".
  BOOST_TEST(server.cli("EVAL",
                        "local n = 0 for _, k in ipairs(redis.call('KEYS', '*')) do "
                        "local t = redis.call('TYPE', k).ok "
                        "if (t == 'hash' and redis.call('HEXISTS', k, 'c') == 1) or "
                        "(t == 'zset' and redis.call('ZSCORE', k, 'c')) then n = n + 1 end end "
                        "return n",
                        "0") == "0");

  r = corvo_cli({"schedule", "import", file.string(), "--keep-going", "--quiet"}, server.url(),
                "ns", 2);
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find(":3: priority: 'urgent'") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("3 tasks imported") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("1 line(s) refused") != std::string::npos, r.err);
  BOOST_TEST(!exists("c"));
  const auto d = store.run<std::optional<task>>([](redis_store& s) { return get(s, "d"); });
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST((d->priority == priority::high));
}

BOOST_AUTO_TEST_SUITE_END()
