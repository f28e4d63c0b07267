// Three dispatcher processes on a Redis Cluster (3 masters, 3 replicas): the shards of the
// namespace spread over the masters' slots, every store call touches one slot, and 20,000
// tasks run exactly once when nobody dies. A backup exported from a standalone server
// restores into the cluster (docs/backup.md, "Restoring into a Redis Cluster"). Task events
// are read from the shards' streams on every master. Deduplication by key works with the
// key's window and the tasks on different masters. The cases share one cluster (creating
// one takes seconds); they use their own namespaces.
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/redis_cluster.hpp"
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

constexpr std::size_t task_count = 20'000;
constexpr unsigned shard_count = 16;

asio::awaitable<void> schedule_and_drain(store& tasks, scheduler_workers& workers) {
  co_await corvo::test::schedule_all(
      tasks, corvo::test::record_tasks("task-", task_count, now() + 100ms, 2000ms));
  co_await corvo::test::wait_for_store(tasks, workers, corvo::test::drained, 120s,
                                       "20,000 tasks on three processes and a cluster");
}

corvo::test::redis_cluster& shared_cluster() {
  static corvo::test::redis_cluster cluster;
  return cluster;
}

// `corvo <words> <target…> --namespace NS --shards N [--json]` (the program is built next to
// the tests: <build>/tools/corvo).
corvo::test::command_result corvo_cli(std::vector<std::string> words,
                                      std::vector<std::string> target, const std::string& ns,
                                      unsigned shards, bool json = true) {
  std::vector<std::string> argv{corvo::test::corvo_program().string()};
  argv.insert(argv.end(), words.begin(), words.end());
  argv.insert(argv.end(), target.begin(), target.end());
  argv.insert(argv.end(), {"--namespace", ns, "--shards", std::to_string(shards)});
  if (json) {
    argv.push_back("--json");
  }
  return corvo::test::run_command(argv, std::chrono::seconds(60));
}

// `corvo <words> --cluster <seed> --namespace mp --shards 16 --json`.
boost::json::value corvo_on_cluster(const corvo::test::redis_cluster& cluster,
                                    std::vector<std::string> words) {
  const auto r =
      corvo_cli(std::move(words), {"--cluster", cluster.seed_urls().front()}, "mp", shard_count);
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, "corvo failed: " << r.err);
  return boost::json::parse(r.out);
}

}  // namespace

BOOST_AUTO_TEST_CASE(three_processes_on_a_cluster_run_every_task_exactly_once) {
  auto& cluster = shared_cluster();
  // The shards are spread over every master (so the test exercises routing, not one node).
  std::set<std::size_t> owners;
  for (unsigned s = 0; s < shard_count; ++s) {
    const auto tag = "{mp:" + std::to_string(s) + "}:due";
    owners.insert(cluster.node_for_slot(cluster.key_slot(tag)));
  }
  BOOST_TEST(owners.size() == 3u);

  auto config = scheduler_worker_config::cluster(cluster.seed_urls());
  config.shards = shard_count;
  config.lease = 10s;
  config.handler_delay = 1ms;
  scheduler_workers workers(CORVO_SCHEDULER_WORKER_PATH, 3, config);

  asio::io_context ctx;
  const auto seeds = redis::client_config::from_cluster_seeds(cluster.seed_urls());
  redis::client conn(ctx.get_executor(), seeds);
  redis_store tasks(conn, seeds, {.name_space = "mp", .shards = shard_count});
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  const auto started = std::chrono::steady_clock::now();
  corvo::test::run(ctx, schedule_and_drain(tasks, workers), [&] { conn.cancel(); });
  BOOST_TEST_MESSAGE("20,000 tasks drained in "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count()
                     << " ms");
  for (const auto& problem : workers.stop_all()) {
    BOOST_ERROR(problem);
  }

  const auto runs = run_journal::read(workers.journals());
  BOOST_TEST(runs.started.size() == task_count);
  BOOST_TEST(runs.finished.size() == task_count);
  BOOST_TEST(corvo::test::not_exactly_once(runs.started) == "");
  BOOST_TEST(corvo::test::not_exactly_once(runs.finished) == "");
  BOOST_TEST(runs.starts_by_pid.size() == 3u);
  std::uint64_t succeeded = 0, stale = 0;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const auto stats = workers[i].stats();
    BOOST_REQUIRE_MESSAGE(stats, workers[i].name() << " printed no stats");
    succeeded += stats->succeeded;
    stale += stats->stale;
    BOOST_TEST(stats->dead_lettered + stats->retried == 0u);
  }
  BOOST_TEST(succeeded == task_count);
  BOOST_TEST(stale == 0u);

  // The administration commands work on the cluster too (every shard on its own master).
  const auto added = corvo_on_cluster(cluster, {"schedule", "add", "--id", "later", "--type",
                                                "record", "--payload", "{}", "--in", "1h"});
  BOOST_TEST(added.as_object().at("scheduled").as_string() == "later");
  const auto stats = corvo_on_cluster(cluster, {"stats"}).as_object();
  BOOST_TEST(stats.at("scheduled").to_number<long long>() == 1);
  BOOST_TEST(stats.at("in_flight").to_number<long long>() == 0);
  BOOST_TEST(stats.at("dead").to_number<long long>() == 0);
}

namespace {

constexpr std::size_t backup_count = 3000;

// The source namespace on a standalone server: `backup_count` waiting tasks (every tenth
// recurring, every seventh with a run timeout and a trace context, every 11th of high
// priority), then "dead-1" dead-lettered and "retry-1" failed once and waiting for its retry
// (attempt 1, an error, due moved, occurrence kept).
asio::awaitable<void> fill_source(redis_store& s) {
  const auto base = now() + 1h;
  std::vector<task> tasks;
  for (std::size_t i = 0; i < backup_count; ++i) {
    task t;
    t.id = "b-" + std::to_string(i);
    t.type = i % 2 == 0 ? "email" : "report";
    t.payload = boost::json::object{{"n", i}, {"text", "<b>\"x\"</b>\n\u00e9"}};
    t.due = base + std::chrono::milliseconds(i);
    t.max_attempts = static_cast<std::uint32_t>(1 + i % 4);
    if (i % 10 == 0) {
      t.repeat = interval{90s};
    }
    if (i % 7 == 0) {
      t.timeout = 1500ms;
      t.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    }
    if (i % 11 == 0) {
      t.priority = priority::high;
    }
    tasks.push_back(std::move(t));
  }
  co_await s.schedule_many(std::move(tasks));
  for (const char* id : {"dead-1", "retry-1"}) {
    task t;
    t.id = id;
    t.type = "charge";
    t.payload = boost::json::string(id);
    t.due = now() - 1s;
    t.max_attempts = 3;
    co_await s.schedule(t);
  }
  std::size_t failed = 0;
  for (unsigned shard = 0; shard < s.shards(); ++shard) {
    auto claimed = co_await s.claim(shard, 10, 60s);
    for (auto& c : claimed.tasks) {
      failure f{c.work.id, c.token, "boom " + c.work.id, std::nullopt};
      if (c.work.id == "retry-1") {
        f.retry_in = std::chrono::microseconds(2h);
      }
      BOOST_REQUIRE(co_await s.nack(shard, f));
      ++failed;
    }
  }
  BOOST_REQUIRE_EQUAL(failed, 2u);
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

}  // namespace

// A namespace exported from a standalone server (4 shards) is imported into the cluster under
// another name with 16 shards, as docs/backup.md describes: exported again from the cluster,
// every line is the same byte for byte (recurrences, timeouts, priorities, trace contexts, the
// dead and the retried task included), and the tasks sit on all three masters.
BOOST_AUTO_TEST_CASE(a_backup_restores_into_the_cluster_losslessly) {
  auto& cluster = shared_cluster();
  corvo::test::redis_server source;
  corvo::test::temp_dir dir("cluster_restore");
  {
    asio::io_context ctx;
    const auto url = redis::client_config::from_url(source.url());
    redis::client conn(ctx.get_executor(), url);
    redis_store tasks(conn, url, {.name_space = "src", .shards = 4});
    asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
    corvo::test::run(ctx, fill_source(tasks), [&] { conn.cancel(); });
  }
  const auto exported =
      corvo_cli({"schedule", "export", "--quiet"}, {"--redis", source.url()}, "src", 4, false);
  BOOST_REQUIRE_MESSAGE(exported.exit_code == 0, exported.err);
  const auto lines = sorted_lines(exported.out);
  BOOST_REQUIRE_EQUAL(lines.size(), backup_count + 2);
  const auto file = dir.path() / "tasks.jsonl";
  std::ofstream(file) << exported.out;

  const std::vector<std::string> on_cluster{"--cluster", cluster.seed_urls().front(), "--cluster",
                                            cluster.seed_urls().back()};
  const auto imported =
      corvo_cli({"schedule", "import", file.string()}, on_cluster, "restored", 16, false);
  BOOST_REQUIRE_MESSAGE(imported.exit_code == 0, imported.err);
  BOOST_TEST(
      imported.err.find(std::to_string(backup_count + 2) + " tasks imported") != std::string::npos,
      imported.err);

  const auto again =
      corvo_cli({"schedule", "export", "--quiet"}, on_cluster, "restored", 16, false);
  BOOST_REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  const auto restored = sorted_lines(again.out);
  BOOST_TEST_REQUIRE(restored.size() == lines.size());
  std::size_t differing = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (restored[i] != lines[i] && differing++ < 3) {
      BOOST_ERROR("line " << i << " differs:\n  " << lines[i] << "\n  " << restored[i]);
    }
  }
  BOOST_TEST(differing == 0u);

  const auto stats = corvo_cli({"stats"}, on_cluster, "restored", 16);
  BOOST_REQUIRE_MESSAGE(stats.exit_code == 0, stats.err);
  const auto counts = boost::json::parse(stats.out).as_object();
  BOOST_TEST(counts.at("scheduled").to_number<long long>() == (long long)backup_count + 1);
  BOOST_TEST(counts.at("dead").to_number<long long>() == 1);
  BOOST_TEST(counts.at("in_flight").to_number<long long>() == 0);

  // Every master holds some of the restored task records, and together they hold all.
  std::map<std::size_t, long long> records_by_master;
  // A shard's records: its tasks hash and the buckets of its compact tier.
  const std::string count_records =
      "local n = redis.call('HLEN', KEYS[1]) "
      "for _, b in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do "
      "n = n + redis.call('HLEN', KEYS[3] .. b) end return n";
  for (unsigned s = 0; s < 16; ++s) {
    const auto prefix = "{restored:" + std::to_string(s) + "}:";
    const auto owner = cluster.node_for_slot(cluster.key_slot(prefix + "tasks"));
    records_by_master[owner] +=
        std::stoll(cluster.node(owner).cli("EVAL", count_records, "3", prefix + "tasks",
                                           prefix + "compact:index", prefix + "compact:"));
  }
  BOOST_TEST(records_by_master.size() == 3u);
  long long total = 0;
  for (const auto& [node, n] : records_by_master) {
    BOOST_TEST(n > 0, "master " << node << " holds no task");
    total += n;
  }
  BOOST_TEST(total == (long long)backup_count + 2);
}

namespace {

// 48 tasks over the 16 shards of namespace `ev`, each claimed and acked; a reader started
// before gets exactly scheduled, started/1, succeeded/1 of each, in that order.
asio::awaitable<void> events_on_cluster(redis_store& tasks) {
  event_query from_now;
  auto reader = co_await tasks.events(from_now);
  constexpr std::size_t n = 48;
  for (std::size_t i = 0; i < n; ++i) {
    task t;
    t.id = "ev-" + std::to_string(i);
    t.type = "mail";
    t.payload = static_cast<int>(i);
    t.due = now();
    co_await tasks.schedule(std::move(t));
  }
  std::size_t claimed = 0;
  for (unsigned s = 0; s < tasks.shards(); ++s) {
    auto c = co_await tasks.claim(s, 100, 10s);
    std::vector<completion> done;
    for (const auto& t : c.tasks) {
      completion x;
      x.id = t.work.id;
      x.token = t.token;
      done.push_back(std::move(x));
    }
    claimed += c.tasks.size();
    if (!done.empty()) {
      co_await tasks.ack(s, std::move(done));
    }
  }
  BOOST_TEST(claimed == n);
  std::vector<task_event> seen;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (seen.size() < 3 * n && std::chrono::steady_clock::now() < deadline) {
    auto got = co_await reader->read(1000, 500ms);
    seen.insert(seen.end(), got.begin(), got.end());
  }
  BOOST_TEST(seen.size() == 3 * n);
  std::map<std::string, std::vector<std::string>> lives;
  for (const auto& e : seen) {
    BOOST_TEST(e.shard == tasks.shard_of(e.task_id));
    lives[e.task_id].push_back(std::string(to_string(e.kind)) + "/" + std::to_string(e.attempt));
  }
  BOOST_TEST(lives.size() == n);
  const std::vector<std::string> expected{"scheduled/0", "started/1", "succeeded/1"};
  for (const auto& [id, life] : lives) {
    BOOST_TEST(life == expected, id);
  }
}

}  // namespace

// Task events on a cluster: each shard's stream is in its shard's slot (so on all three
// masters), written by the shard's scripts; a reader (one connection per shard) gets every
// task's events in order.
BOOST_AUTO_TEST_CASE(task_events_on_a_cluster) {
  auto& cluster = shared_cluster();
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_cluster_seeds(cluster.seed_urls());
  redis::client conn(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  redis_store_options o;
  o.name_space = "ev";
  o.shards = shard_count;
  o.events.enabled = true;
  o.events.max_len = 1000;
  redis_store tasks(conn, cfg, o);
  corvo::test::run(ctx, events_on_cluster(tasks), [&] { conn.cancel(); });
  std::set<std::size_t> owners;
  for (unsigned s = 0; s < shard_count; ++s) {
    const auto key = tasks.events_key(s);
    const auto owner = cluster.node_for_slot(cluster.key_slot(key));
    if (cluster.node(owner).cli("EXISTS", key) == "1") {
      owners.insert(owner);
    }
  }
  BOOST_TEST(owners.size() == 3u);
}

namespace {

task dedup_task(std::string id) {
  task t;
  t.id = std::move(id);
  t.type = "index.rebuild";
  t.payload = boost::json::string(t.id);
  t.due = now() - 1s;  // due: a claim takes whatever is left
  return t;
}

// `count` schedules of distinct ids with key "hot", one after the other on `s`; the outcomes.
asio::awaitable<void> dedup_burst(store& s, std::string prefix, int count,
                                  std::vector<dedup_result>& out) {
  dedup_options replace;
  replace.window = 60s;
  for (int i = 0; i < count; ++i) {
    auto t = dedup_task(prefix + std::to_string(i));
    out.push_back(co_await s.schedule_deduplicated_by_key(std::move(t), "hot", replace));
  }
}

// `first` and `second` (their shards on two masters) with `key` (its window on the third):
// the second replaces the first. Then callers on every connection at once with one key:
// one task left, claimed once.
asio::awaitable<void> dedup_key_on_cluster(std::vector<redis_store*> stores, std::string first,
                                           std::string second, std::string key) {
  auto& s = *stores[0];
  dedup_options replace;
  replace.window = 60s;
  auto r = co_await s.schedule_deduplicated_by_key(dedup_task(first), key, replace);
  BOOST_TEST((r.outcome == dedup_outcome::scheduled));
  r = co_await s.schedule_deduplicated_by_key(dedup_task(second), key, replace);
  BOOST_TEST((r.outcome == dedup_outcome::replaced));
  BOOST_TEST(r.replaced_id == first);
  const auto gone = co_await s.get(first);
  BOOST_TEST(!gone.has_value());
  const auto kept = co_await s.get(second);
  BOOST_TEST(kept.has_value());
  BOOST_TEST(co_await s.cancel(second));

  auto ex = co_await asio::this_coro::executor;
  std::vector<std::vector<dedup_result>> out(stores.size());
  {
    corvo::task_group group(ex);
    for (std::size_t c = 0; c < stores.size(); ++c) {
      co_await group.spawn(dedup_burst(*stores[c], "c" + std::to_string(c) + "-", 15, out[c]));
    }
    co_await group.join();
  }
  std::size_t opened = 0;
  std::set<std::string> replaced;
  for (const auto& results : out) {
    for (const auto& result : results) {
      if (result.outcome == dedup_outcome::scheduled) {
        ++opened;
      } else {
        BOOST_TEST((result.outcome == dedup_outcome::replaced));
        BOOST_TEST(replaced.insert(result.replaced_id).second);
      }
    }
  }
  BOOST_TEST(opened == 1u);
  BOOST_TEST(replaced.size() == stores.size() * 15 - 1);
  std::size_t claimed = 0;
  for (unsigned shard = 0; shard < s.shards(); ++shard) {
    const auto got = co_await s.claim(shard, 100, 30s);
    for (const auto& c : got.tasks) {
      ++claimed;
      BOOST_TEST(!replaced.contains(c.work.id));
      std::vector<completion> done(1);
      done[0].id = c.work.id;
      done[0].token = c.token;
      BOOST_TEST(co_await s.ack(shard, std::move(done)) == 1u);
    }
  }
  BOOST_TEST(claimed == 1u);
}

asio::awaitable<void> run_conn(redis::client& c) {
  co_await c.run();
}

}  // namespace

// Deduplication by key on a cluster: the key's window and the tasks on different masters
// (each step of the protocol on its own node), and concurrent callers on four connections.
BOOST_AUTO_TEST_CASE(deduplication_by_key_across_nodes) {
  auto& cluster = shared_cluster();
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_cluster_seeds(cluster.seed_urls());
  redis_store_options o;
  o.name_space = "dk";
  o.shards = shard_count;
  std::vector<std::unique_ptr<redis::client>> conns;
  std::vector<std::unique_ptr<redis_store>> stores;
  std::vector<redis_store*> refs;
  for (int i = 0; i < 4; ++i) {
    conns.push_back(std::make_unique<redis::client>(ctx.get_executor(), cfg));
    asio::co_spawn(ctx, run_conn(*conns.back()), [](std::exception_ptr) {});
    stores.push_back(std::make_unique<redis_store>(*conns.back(), cfg, o));
    refs.push_back(stores.back().get());
  }
  auto& s = *stores[0];
  const auto owner = [&](const std::string& key) {
    return cluster.node_for_slot(cluster.key_slot(key));
  };
  const auto shard_owner = [&](const std::string& id) {
    return owner(s.keys_of(s.shard_of(id))[0]);
  };
  const std::string first = "first";
  std::string second, key;
  for (int i = 0; second.empty(); ++i) {
    const auto candidate = "second-" + std::to_string(i);
    if (shard_owner(candidate) != shard_owner(first)) {
      second = candidate;
    }
  }
  for (int i = 0; key.empty(); ++i) {
    const auto candidate = "doc:" + std::to_string(i);
    const auto window = owner(s.dedup_window_key(candidate));
    if (window != shard_owner(first) && window != shard_owner(second)) {
      key = candidate;
    }
  }
  corvo::test::run(ctx, dedup_key_on_cluster(refs, first, second, key), [&] {
    for (auto& c : conns) {
      c->cancel();
    }
  });
}
