// The stream retention job on three processes (test/programs/stream_retention_worker.cpp),
// every 300 ms on corvo's scheduler: each occurrence runs exactly once across the processes,
// and no run trims an entry still pending in a group or not yet delivered to it.
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include "support/redis_server.hpp"
#include "support/scheduler_workers.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using corvo::test::run_journal;
using corvo::test::scheduler_worker;

namespace {

constexpr std::size_t wanted_occurrences = 8;

// "events": 1000-0 … 8000-0 (1970: older than any max age); group billing has read
// 1000…3000 and acked 1000, so 2000 and 3000 are pending and 4000 on not delivered yet.
// "log": two old entries and one made now, no groups.
void seed_streams(corvo::test::redis_server& server) {
  for (int i = 1; i <= 8; ++i) {
    server.cli("XADD", "events", std::to_string(i * 1000) + "-0", "n", std::to_string(i));
  }
  server.cli("XGROUP", "CREATE", "events", "billing", "0");
  server.cli("XREADGROUP", "GROUP", "billing", "b1", "COUNT", "3", "STREAMS", "events", ">");
  server.cli("XACK", "events", "billing", "1000-0");
  server.cli("XADD", "log", "1000-0", "n", "1");
  server.cli("XADD", "log", "2000-0", "n", "2");
  server.cli("XADD", "log", "*", "n", "3");
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

}  // namespace

BOOST_AUTO_TEST_CASE(three_processes_run_each_occurrence_once_and_never_trim_needed_entries) {
  corvo::test::redis_server server;
  seed_streams(server);
  corvo::test::temp_dir dir("retention");
  const std::vector<std::string> args{"--redis",   server.url(), "--stream",    "events",
                                      "--stream",  "log",        "--schedule",  "every 300ms",
                                      "--max-age", "3600000",    "--max-sleep", "200"};
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
  BOOST_TEST(server.cli("XLEN", "events") == "7");
  const auto first = server.cli("XRANGE", "events", "-", "+", "COUNT", "1");
  BOOST_TEST(first.find("2000-0") == 0u, first);
  BOOST_TEST(server.cli("XPENDING", "events", "billing").find("2\n2000-0\n3000-0") == 0u);
  BOOST_TEST(server.cli("XLEN", "log") == "1");  // no groups: the age alone
}
