// Three stream_worker processes in one group; one killed with SIGKILL mid-run: the survivors
// reclaim its pending entries (XAUTOCLAIM after min_idle), every entry is handled, and only
// the entries the victim held unacknowledged run twice.
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/stream/producer.hpp>
#include <set>

#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/stream_fixture.hpp"
#include "support/stream_load.hpp"
#include "support/stream_workers.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace stream = corvo::stream;
using namespace std::chrono_literals;
using corvo::test::stream_journal;
using corvo::test::stream_workers;

using corvo::test::load;
using corvo::test::worker_arguments;

BOOST_AUTO_TEST_SUITE(stream_worker_kill)

BOOST_AUTO_TEST_CASE(survivors_reclaim_the_entries_of_a_killed_worker) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  const std::string key = "{kill}:events";
  constexpr std::size_t n = 30'000;
  corvo::test::run(
      ctx,
      [&]() -> asio::awaitable<void> {
        const auto ids = co_await load(client, key, n);
        auto args = worker_arguments(server, key);
        args.insert(args.end(), {"--min-idle", "2000", "--claim-interval", "300", "--handler-delay",
                                 "5", "--max-in-flight", "16", "--batch", "16"});
        stream_workers workers(CORVO_STREAM_WORKER_PATH, 3, args);
        stream_journal journal;
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
            [&] {
              workers.check_alive();
              return workers.journal().runs.size() >= n / 6;
            },
            60s, 50ms));
        workers.kill(0);
        journal = workers.journal();
        // What the victim held unacknowledged when it died (reclaiming waits 2 s of idleness).
        const auto victim_pending = co_await corvo::test::pending_of(client, key, "workers");
        std::set<std::string> held_by_victim;
        for (const auto& [id, owner, idle, deliveries] : victim_pending) {
          if (owner == workers.consumer_name(0)) {
            held_by_victim.insert(id);
          }
        }
        BOOST_TEST_REQUIRE(journal.runs.size() < n, "the run ended before the kill");
        BOOST_TEST(!held_by_victim.empty());
        const bool all = co_await corvo::test::eventually(
            [&] {
              workers.check_alive();
              journal = workers.journal();
              return journal.runs.size() == n;
            },
            120s, 250ms);
        BOOST_TEST_REQUIRE(all, "handled " << journal.runs.size() << " of " << n);
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
            [&] { return server.cli("XPENDING", key, "workers").starts_with("0"); }, 30s, 100ms));
        for (const auto& problem : workers.stop_all()) {
          BOOST_ERROR(problem);
        }
        journal = workers.journal();
        const pid_t victim = workers.pid(0);
        std::size_t reclaimed = 0;
        for (const auto& id : ids) {
          const auto it = journal.runs.find(id);
          BOOST_TEST_REQUIRE((it != journal.runs.end()), "entry " << id << " never handled");
          const auto& runs = it->second;
          std::size_t by_survivors = 0;
          for (const auto& r : runs) {
            by_survivors += r.pid != victim ? 1 : 0;
          }
          BOOST_TEST(by_survivors <= 1u, "entry " << id << " ran twice on survivors");
          if (held_by_victim.contains(id)) {
            // Reclaimed: a survivor ran it, after the victim (if the victim had started it).
            BOOST_TEST(by_survivors == 1u, "entry " << id << " held by the victim not reclaimed");
            BOOST_TEST(runs.back().deliveries >= 2u);
            ++reclaimed;
          } else {
            BOOST_TEST(runs.size() == 1u, "entry " << id << " ran " << runs.size() << " times");
          }
        }
        BOOST_TEST(reclaimed == held_by_victim.size());
        BOOST_TEST((co_await corvo::test::pending_of(client, key, "workers")).empty());
      }(),
      [&] { client.cancel(); });
}

BOOST_AUTO_TEST_SUITE_END()
