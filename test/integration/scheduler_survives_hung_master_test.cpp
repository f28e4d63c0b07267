// A hung master (SIGSTOP: the process keeps its sockets open but never answers) under three
// dispatcher processes on a Redis Cluster (3 masters, 3 replicas, node timeout 1 s), with
// 20,000 tasks due over 15 s and the master stopped 6 s into them:
// - the shards on the two healthy masters keep firing on time during the outage (p99
//   lateness under 50 ms): nothing of theirs waits on the hung node;
// - the hung master's shards resume within node timeout + request deadline + 1 s of the
//   replica's promotion (requests to the hung node fail at the deadline, the topology is
//   re-read from the other nodes, the new master takes over);
// - every task runs; only tasks of the hung master's shards may run twice (the lease rules:
//   a run whose ack could not reach the hung master, or whose claim the old master took but
//   never answered, runs again once its lease expires on the promoted replica).
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/shard.hpp>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "support/redis_cluster.hpp"
#include "support/run_coroutine.hpp"
#include "support/scheduler_workers.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using namespace corvo::schedule;
using corvo::test::scheduler_worker_config;
using corvo::test::scheduler_workers;

namespace {

constexpr std::size_t task_count = 20'000;
constexpr unsigned shard_count = 16;
constexpr auto due_spread = 15s;
constexpr auto stop_into = 6s;  // SIGSTOP this long after the first task is due
constexpr auto node_timeout = 1000ms;

// The reply deadline of every Redis connection (workers and this process). The variable
// CORVO_TEST_REQUEST_TIMEOUT_MS overrides it, e.g. 0 to see the outage without deadlines.
std::chrono::milliseconds request_timeout_setting() {
  if (const char* text = std::getenv("CORVO_TEST_REQUEST_TIMEOUT_MS")) {
    return std::chrono::milliseconds(std::stoll(text));
  }
  return 2000ms;
}
const auto request_timeout = request_timeout_setting();

using micros = std::int64_t;

micros to_micros(time_point t) {
  return t.time_since_epoch().count();
}

// The first start of each task (journal order is per process; the earliest wins) and how
// many starts it had.
struct task_runs {
  micros due = 0;
  micros first_start = 0;
  int starts = 0;
  int finishes = 0;
};

std::map<std::string, task_runs> read_runs(const std::vector<std::filesystem::path>& journals) {
  std::map<std::string, task_runs> out;
  for (const auto& path : journals) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      char event = 0;
      long pid = 0;
      std::string id;
      micros due = 0, at = 0;
      if (!(words >> event >> pid >> id >> due >> at)) {
        continue;  // a torn last line
      }
      auto& r = out[id];
      r.due = due;
      if (event == 'S') {
        r.first_start = r.starts == 0 ? at : std::min(r.first_start, at);
        ++r.starts;
      } else if (event == 'F') {
        ++r.finishes;
      }
    }
  }
  return out;
}

struct outage {
  time_point stopped_at{};
  std::optional<time_point> promoted_at;
};

// Polls the victim's replicas until one reports the master role (the cluster promoted it).
asio::awaitable<void> wait_for_promotion(corvo::test::redis_cluster& cluster,
                                         std::vector<std::size_t> replicas, outage& out) {
  for (int i = 0; i < 600 && !out.promoted_at; ++i) {
    for (auto r : replicas) {
      const auto role = cluster.node(r).cli("ROLE");
      if (role.rfind("master", 0) == 0) {
        out.promoted_at = now();
        break;
      }
    }
    if (!out.promoted_at) {
      co_await corvo::sleep_for(50ms);
    }
  }
}

asio::awaitable<void> hang_a_master(store& tasks, scheduler_workers& workers,
                                    corvo::test::redis_cluster& cluster, std::size_t victim,
                                    std::vector<std::size_t> replicas, time_point first_due,
                                    outage& out) {
  co_await corvo::test::schedule_all(
      tasks, corvo::test::record_tasks("task-", task_count, first_due, due_spread), 256);
  // The outage must fall inside the due window, or it measures nothing.
  BOOST_REQUIRE_MESSAGE(now() < first_due, "scheduling the tasks took past their first due time");
  const auto stop_at = first_due + stop_into;
  while (now() < stop_at) {
    co_await corvo::sleep_for(std::min<std::chrono::microseconds>(stop_at - now(), 50ms));
  }
  BOOST_REQUIRE(::kill(cluster.node(victim).pid(), SIGSTOP) == 0);
  out.stopped_at = now();
  co_await wait_for_promotion(cluster, replicas, out);
  BOOST_REQUIRE_MESSAGE(out.promoted_at, "no replica of the stopped master was promoted");
  co_await corvo::test::wait_for_store(tasks, workers, corvo::test::drained, 180s,
                                       "20,000 tasks with a hung master");
}

std::string percentile_text(std::vector<micros> v, double p) {
  if (v.empty()) {
    return "n/a";
  }
  std::sort(v.begin(), v.end());
  return std::to_string(v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))] / 1000) +
         " ms";
}

micros percentile(std::vector<micros> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

}  // namespace

BOOST_AUTO_TEST_CASE(healthy_shards_keep_firing_while_a_master_hangs) {
  // With the default `cluster-require-full-coverage yes`, every master answers CLUSTERDOWN
  // while the hung master's slots are uncovered (until the promotion): no client can keep
  // the healthy shards going then. Deployments that want one shard's outage to spare the
  // others set it to no, as here.
  corvo::test::redis_cluster cluster({.node_timeout_ms = static_cast<int>(node_timeout.count()),
                                      .extra_config = {"cluster-require-full-coverage no"}});
  // Every master serves some shards; the victim is the owner of shard 0.
  std::map<unsigned, std::size_t> owner_of_shard;
  std::set<std::size_t> owners;
  for (unsigned s = 0; s < shard_count; ++s) {
    const auto tag = "{mp:" + std::to_string(s) + "}:due";
    owner_of_shard[s] = cluster.node_for_slot(cluster.key_slot(tag));
    owners.insert(owner_of_shard[s]);
  }
  BOOST_REQUIRE(owners.size() == 3u);
  const std::size_t victim = owner_of_shard[0];
  std::vector<std::size_t> replicas;
  for (const auto& n : cluster.nodes()) {
    if (n.master_id == cluster.node_id(victim)) {
      replicas.push_back(n.index);
    }
  }
  BOOST_REQUIRE(!replicas.empty());

  auto config = scheduler_worker_config::cluster(cluster.seed_urls());
  config.shards = shard_count;
  config.lease = 4s;
  config.handler_delay = 1ms;
  config.request_timeout = request_timeout;
  scheduler_workers workers(CORVO_SCHEDULER_WORKER_PATH, 3, config);

  asio::io_context ctx;
  auto seeds = redis::client_config::from_cluster_seeds(cluster.seed_urls());
  seeds.cluster->node.request_timeout = request_timeout;
  redis::client conn(ctx.get_executor(), seeds);
  redis_store tasks(conn, seeds, {.name_space = "mp", .shards = shard_count});
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  // Scheduling 20,000 tasks takes up to ~30 s with sanitizers on a loaded machine.
  const auto first_due = now() + 40s;
  outage out;
  try {
    corvo::test::run(ctx, hang_a_master(tasks, workers, cluster, victim, replicas, first_due, out),
                     [&] { conn.cancel(); });
  } catch (...) {
    ::kill(cluster.node(victim).pid(), SIGCONT);
    throw;
  }
  ::kill(cluster.node(victim).pid(), SIGCONT);
  for (const auto& problem : workers.stop_all()) {
    BOOST_ERROR(problem);
  }

  const auto runs = read_runs(workers.journals());
  const micros stopped = to_micros(out.stopped_at);
  const micros promoted = to_micros(*out.promoted_at);
  // The outage, for the healthy shards: from the stop until the hung shards could resume.
  const micros outage_end = promoted + std::chrono::duration_cast<std::chrono::microseconds>(
                                           node_timeout + request_timeout + 1s)
                                           .count();

  std::vector<micros> healthy_lateness, healthy_lateness_before;
  // Tasks of the hung shards that fell due while their master hung: the first and the last
  // start among them (all must have run by outage_end).
  std::optional<micros> hung_resumed, hung_caught_up;
  std::size_t duplicates_healthy = 0, duplicates_hung = 0, never_ran = 0, unfinished = 0;
  std::string examples;
  for (std::size_t i = 0; i < task_count; ++i) {
    const std::string id = "task-" + std::to_string(i);
    const auto it = runs.find(id);
    if (it == runs.end() || it->second.starts == 0) {
      ++never_ran;
      if (examples.size() < 200)
        examples += id + " never ran; ";
      continue;
    }
    const auto& r = it->second;
    if (r.finishes == 0) {
      ++unfinished;
    }
    const bool hung = owner_of_shard[shard_of(id, shard_count)] == victim;
    if (r.starts > 1) {
      ++(hung ? duplicates_hung : duplicates_healthy);
      if (!hung && examples.size() < 200) {
        examples += id + " x" + std::to_string(r.starts) + "; ";
      }
    }
    if (!hung) {
      if (r.due < stopped) {
        healthy_lateness_before.push_back(r.first_start - r.due);
      } else if (r.due <= outage_end) {
        healthy_lateness.push_back(r.first_start - r.due);
      }
    } else if (r.due >= stopped && r.due <= promoted) {
      if (!hung_resumed || r.first_start < *hung_resumed) {
        hung_resumed = r.first_start;
      }
      if (!hung_caught_up || r.first_start > *hung_caught_up) {
        hung_caught_up = r.first_start;
      }
    }
  }

  BOOST_TEST_MESSAGE("stopped master " << cluster.node(victim).address() << " at +"
                                       << (stopped - to_micros(first_due)) / 1000
                                       << " ms; replica promoted " << (promoted - stopped) / 1000
                                       << " ms after the stop");
  BOOST_TEST_MESSAGE("healthy shards during the outage: "
                     << healthy_lateness.size() << " tasks, lateness p50 "
                     << percentile_text(healthy_lateness, 0.5) << ", p99 "
                     << percentile_text(healthy_lateness, 0.99) << ", max "
                     << percentile_text(healthy_lateness, 1.0) << " (before the stop: p99 "
                     << percentile_text(healthy_lateness_before, 0.99) << ")");
  if (hung_resumed) {
    BOOST_TEST_MESSAGE("hung master's shards: first task due during the hang started "
                       << (*hung_resumed - promoted) / 1000 << " ms after the promotion, the last "
                       << (*hung_caught_up - promoted) / 1000 << " ms after it");
  }
  BOOST_TEST_MESSAGE("duplicates: " << duplicates_hung << " on the hung master's shards, "
                                    << duplicates_healthy << " elsewhere");

  BOOST_TEST(never_ran == 0u, examples);
  BOOST_TEST(unfinished == 0u);
  BOOST_TEST(duplicates_healthy == 0u, examples);
  BOOST_REQUIRE(!healthy_lateness.empty());
  // Healthy shards do not wait for the hung one. A shard held up by the hung master is late
  // by about the whole hang (stop -> promotion, about 2 s here without the fix). This machine
  // also runs the rest of the suite beside this test (ASan, 2 cores, CI about twice as
  // slow), so the bound is the largest of 50 ms, twice what the same shards showed before
  // the stop, and a quarter of the hang: a held-up shard stays four times above it.
  BOOST_REQUIRE(!healthy_lateness_before.empty());
  const micros bound = std::max<micros>(
      {50'000, 2 * percentile(healthy_lateness_before, 0.99), (promoted - stopped) / 4});
  BOOST_TEST_MESSAGE("healthy-shard p99 bound: " << bound / 1000 << " ms");
  BOOST_TEST(percentile(healthy_lateness, 0.99) < bound);
  BOOST_REQUIRE(hung_resumed.has_value());
  BOOST_TEST(*hung_caught_up <= outage_end);
}
