// The stream retention job on three processes (test/programs/stream_retention_worker.cpp),
// every 300 ms on corvo's scheduler, on a server and on the 6-node cluster: each occurrence runs
// exactly once across the processes, and no run trims an entry still pending in a group or not yet
// delivered to it.
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "support/redis_cluster.hpp"
#include "support/redis_server.hpp"
#include "support/scheduler_workers.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using corvo::test::run_journal;
using corvo::test::scheduler_worker;

namespace {

constexpr std::size_t wanted_occurrences = 8;

// redis-cli on the node holding the command's key.
using key_cli = std::function<std::string(const std::vector<std::string>&)>;

// "events": 1000-0 … 8000-0 (1970: older than any max age); group billing has read
// 1000…3000 and acked 1000, so 2000 and 3000 are pending and 4000 on not delivered yet.
// "log": two old entries and one made now, no groups.
void seed_streams(const key_cli& run_cli, const std::string& events, const std::string& log) {
  const auto cli = [&](const std::vector<std::string>& words) {
    const auto reply = run_cli(words);
    BOOST_REQUIRE_MESSAGE(!reply.starts_with("ERR") && !reply.starts_with("MOVED"),
                          words.at(0) << ": " << reply);
  };
  for (int i = 1; i <= 8; ++i) {
    cli({"XADD", events, std::to_string(i * 1000) + "-0", "n", std::to_string(i)});
  }
  cli({"XGROUP", "CREATE", events, "billing", "0"});
  cli({"XREADGROUP", "GROUP", "billing", "b1", "COUNT", "3", "STREAMS", events, ">"});
  cli({"XACK", events, "billing", "1000-0"});
  cli({"XADD", log, "1000-0", "n", "1"});
  cli({"XADD", log, "2000-0", "n", "2"});
  cli({"XADD", log, "*", "n", "3"});
}

// Occurrence (µs) -> starts, from every journal.
std::map<std::string, std::size_t> starts_per_occurrence(
    const std::vector<std::filesystem::path>& journals) {
  std::map<std::string, std::size_t> out;
  for (const auto& [key, pids] : run_journal::read(journals, /*per_occurrence=*/true).started) {
    out[key] += pids.size();
  }
  return out;
}

// Three workers on `connection`, until they ran `wanted_occurrences`; then the checks.
void three_workers(const std::vector<std::string>& connection, const key_cli& cli,
                   const std::string& events, const std::string& log) {
  seed_streams(cli, events, log);
  corvo::test::temp_dir dir("retention");
  std::vector<std::string> args = connection;
  for (const auto& more : {"--stream", events.c_str(), "--stream", log.c_str(), "--schedule",
                           "every 300ms", "--max-age", "3600000", "--max-sleep", "200"}) {
    args.emplace_back(more);
  }
  std::vector<std::unique_ptr<scheduler_worker>> workers;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(std::make_unique<scheduler_worker>(
        CORVO_STREAM_RETENTION_WORKER_PATH, dir.path(), "retention-" + std::to_string(i), args));
  }
  std::vector<std::filesystem::path> journals;
  for (auto& w : workers) {
    w->wait_ready();
    journals.push_back(w->journal_path());
  }

  // Wait (bounded) for the occurrences; 300 ms apart, so 8 take about 2.4 s.
  const auto limit = std::chrono::steady_clock::now() + 60s;
  while (starts_per_occurrence(journals).size() < wanted_occurrences &&
         std::chrono::steady_clock::now() < limit) {
    for (auto& w : workers) {
      BOOST_REQUIRE_MESSAGE(w->running(), w->name() << " exited:\n" << w->log_tail());
    }
    std::this_thread::sleep_for(50ms);
  }
  for (auto& w : workers) {
    const int status = w->stop();
    BOOST_TEST(status == 0, w->name() << " exit status " << status << ":\n" << w->log_tail());
  }

  const auto runs = run_journal::read(journals, /*per_occurrence=*/true);
  BOOST_TEST(runs.started.size() >= wanted_occurrences);
  BOOST_TEST(corvo::test::not_exactly_once(runs.started) == "");
  BOOST_TEST(corvo::test::not_exactly_once(runs.finished) == "");
  BOOST_TEST(runs.finished.size() == runs.started.size());
  BOOST_TEST_MESSAGE(runs.started.size()
                     << " occurrences over " << runs.starts_by_pid.size() << " processes");

  // Only 1000-0 went: 2000 and 3000 are pending, 4000 on not delivered to billing.
  BOOST_TEST(cli({"XLEN", events}) == "7");
  const auto first = cli({"XRANGE", events, "-", "+", "COUNT", "1"});
  BOOST_TEST(first.find("2000-0") == 0u, first);
  BOOST_TEST(cli({"XPENDING", events, "billing"}).find("2\n2000-0\n3000-0") == 0u);
  BOOST_TEST(cli({"XLEN", log}) == "1");  // no groups: the age alone
}

}  // namespace

BOOST_AUTO_TEST_CASE(three_processes_run_each_occurrence_once_and_never_trim_needed_entries) {
  corvo::test::redis_server server;
  const key_cli cli = [&](const std::vector<std::string>& words) { return server.cli_argv(words); };
  const std::vector<std::string> connection{"--redis", server.url()};
  three_workers(connection, cli, "events", "log");
}

BOOST_AUTO_TEST_CASE(on_the_cluster_too) {
  corvo::test::redis_cluster cluster;
  const key_cli cli = [&](const std::vector<std::string>& words) {
    const auto& key = words.at(0) == "XREADGROUP" ? words.at(7)
                      : words.at(0) == "XGROUP"   ? words.at(2)
                                                  : words.at(1);
    return cluster.node(cluster.node_for_slot(cluster.key_slot(key))).cli_argv(words);
  };
  std::vector<std::string> connection;
  for (const auto& seed : cluster.seed_urls()) {
    connection.push_back("--cluster");
    connection.push_back(seed);
  }
  three_workers(connection, cli, "{shop}:events", "audit-log");
}
