// Streams on a 6-node Redis Cluster (issue 10): one consumer reads three streams that live
// on the three masters (one dedicated connection each) while producers keep appending to
// all three; one master is killed with SIGKILL during consumption.
// - the two healthy streams are consumed throughout the outage, each entry exactly once;
// - consumption of the killed master's stream resumes after its replica is promoted: the
//   entries appended to the promoted master are handled;
// - nothing acknowledged is lost: every entry whose XADD was answered and replicated (WAIT
//   in the same request) is handled, and no entry is left pending in the group (the
//   entries the dead master had delivered without a replicated XACK are reclaimed).
// The cluster runs with cluster-require-full-coverage no, so the healthy masters serve
// their slots while the failover goes on.
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/stream/consumer.hpp>
#include <corvo/stream/producer.hpp>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "support/eventually.hpp"
#include "support/redis_cluster.hpp"
#include "support/run_coroutine.hpp"
#include "support/stream_fixture.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace stream = corvo::stream;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

long ms(steady::duration d) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

// What the producers appended, per stream.
struct appended {
  bool stop = false;
  std::map<std::string, int> replicas;                   // WAIT target per stream
  std::map<std::string, std::set<std::string>> durable;  // ids answered and replicated
  std::map<std::string, std::size_t> failed_batches;     // requests that failed or timed out
  std::map<std::string, int> running;                    // producer loops still going
};

// Appends `batch` entries to `key` and WAITs for the stream's replica count in the same
// request (one connection, in order: the WAIT covers exactly these XADDs), every 10 ms
// until stopped. WAIT blocks its connection, so `c` is a dedicated client.
asio::awaitable<void> produce(redis::client* c, std::shared_ptr<appended> out, std::string key,
                              int batch) {
  stream::producer producer(*c);
  int n = 0;
  ++out->running[key];
  while (!out->stop) {
    const int replicas = out->replicas.at(key);
    redis::request req;
    for (int i = 0; i < batch; ++i, ++n) {
      std::vector<std::string> fields{"n", std::to_string(n)};
      producer.push_xadd(req, key, fields);
    }
    req.push("WAIT", replicas, 500);
    redis::generic_response resp;
    std::vector<std::string> ids;
    try {
      co_await c->exec(req, resp);
      for (const auto& node : resp) {
        if (node.depth == 0) {
          ids.push_back(node.value);
        }
      }
    } catch (const std::exception&) {
      ids.clear();
    }
    if (ids.size() == static_cast<std::size_t>(batch) + 1 && std::stoi(ids.back()) >= replicas) {
      ids.pop_back();
      out->durable[key].insert(ids.begin(), ids.end());
    } else {
      ++out->failed_batches[key];
    }
    co_await corvo::sleep_for(10ms);
  }
  --out->running[key];
}

std::size_t count_of(const std::map<std::string, std::map<std::string, int>>& m,
                     const std::string& key) {
  const auto it = m.find(key);
  return it == m.end() ? 0 : it->second.size();
}

}  // namespace

BOOST_AUTO_TEST_CASE(consumption_resumes_after_a_master_is_killed) {
  corvo::test::redis_cluster_options cluster_options;
  cluster_options.extra_config = {"cluster-require-full-coverage no"};
  corvo::test::redis_cluster cluster(cluster_options);
  // One stream per master.
  std::map<std::size_t, std::string> stream_of_master;
  for (int i = 0; stream_of_master.size() < 3 && i < 1000; ++i) {
    const std::string key = "{s" + std::to_string(i) + "}:events";
    stream_of_master.emplace(cluster.node_for_slot(cluster.key_slot(key)), key);
  }
  BOOST_TEST_REQUIRE(stream_of_master.size() == 3u);
  std::vector<std::string> keys;
  for (const auto& [master, key] : stream_of_master) {
    keys.push_back(key);
  }
  const std::size_t victim = stream_of_master.begin()->first;
  const std::string victim_key = stream_of_master.begin()->second;

  asio::io_context ctx;
  const auto seeds = redis::client_config::from_cluster_seeds(cluster.seed_urls());
  redis::client client(ctx.get_executor(), seeds);
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  const auto appender = client.dedicated();
  asio::co_spawn(ctx, appender->run(), [](std::exception_ptr) {});

  stream::consumer_options o;
  o.group = "g";
  o.streams = keys;
  o.block = 200ms;
  o.min_idle = 2000ms;  // far above any handling delay here: only lost deliveries are reclaimed
  o.claim_interval = 250ms;
  o.redis_retry = {20ms, 300ms};
  o.drain_timeout = 5s;
  stream::consumer c(client, o);
  // stream → id → runs
  auto handled = std::make_shared<std::map<std::string, std::map<std::string, int>>>();
  auto out = std::make_shared<appended>();
  for (const auto& key : keys) {
    out->replicas[key] = 1;
  }
  std::optional<corvo::test::background_consumer> bg;

  corvo::test::run(
      ctx,
      [&]() -> asio::awaitable<void> {
        bg.emplace(ctx.get_executor(), c,
                   [handled](const stream::entry& e) -> asio::awaitable<void> {
                     ++(*handled)[e.stream][e.id];
                     co_return;
                   });
        for (const auto& key : keys) {
          asio::co_spawn(ctx, produce(appender.get(), out, key, 20), [](std::exception_ptr) {});
        }
        // Consumption is going on every stream.
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
            [&] {
              for (const auto& key : keys) {
                if (out->durable[key].size() < 200 || count_of(*handled, key) < 200) {
                  return false;
                }
              }
              return true;
            },
            30s));
        std::map<std::string, std::size_t> at_kill;
        for (const auto& key : keys) {
          at_kill[key] = count_of(*handled, key);
        }
        const auto killed_at = steady::now();
        cluster.kill_node(victim);
        // The fixture polls the nodes with blocking calls: off this thread, so the consumer
        // and the producers keep running meanwhile.
        auto promoted = std::async(std::launch::async, [&] { cluster.wait_for_failover(victim); });
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
            [&] { return promoted.wait_for(0s) == std::future_status::ready; }, 60s));
        promoted.get();
        const auto promoted_at = steady::now();
        std::cout << "master " << victim << " (" << victim_key
                  << ") killed; replica promoted after " << ms(promoted_at - killed_at) << " ms\n";
        // The healthy streams were consumed during the outage.
        for (const auto& key : keys) {
          if (key != victim_key) {
            const auto during = count_of(*handled, key) - at_kill[key];
            std::cout << "  " << key << ": " << during << " entries handled during the outage\n";
            BOOST_TEST(during > 0u,
                       key << " consumed while " << victim_key << "'s master was down");
          }
        }
        // The promoted master has no replica (its master is dead): its appends are acknowledged
        // by the master alone from now on.
        out->replicas[victim_key] = 0;
        const auto victim_before = out->durable[victim_key].size();
        const auto victim_handled_before = count_of(*handled, victim_key);
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
            [&] { return out->durable[victim_key].size() >= victim_before + 100; }, 30s));
        out->stop = true;
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
            [&] {
              for (const auto& [key, n] : out->running) {
                if (n != 0) {
                  return false;
                }
              }
              return true;
            },
            10s));
        // Every acknowledged append is handled, and nothing stays pending.
        const auto all_handled = [&] {
          for (const auto& [key, ids] : out->durable) {
            for (const auto& id : ids) {
              if (!(*handled)[key].contains(id)) {
                return false;
              }
            }
          }
          return true;
        };
        const bool complete = co_await corvo::test::eventually(all_handled, 30s);
        for (const auto& [key, ids] : out->durable) {
          std::size_t missing = 0;
          for (const auto& id : ids) {
            missing += (*handled)[key].contains(id) ? 0 : 1;
          }
          std::cout << "  " << key << ": " << ids.size() << " acknowledged appends ("
                    << out->failed_batches[key] << " failed batches), " << count_of(*handled, key)
                    << " entries handled, " << missing << " missing\n";
          BOOST_TEST(missing == 0u, key << ": " << missing << " acknowledged entries not handled");
        }
        BOOST_TEST_REQUIRE(complete);
        BOOST_TEST(count_of(*handled, victim_key) > victim_handled_before,
                   "consumption of " << victim_key << " resumed on the promoted master");
        std::map<std::string, std::size_t> pending;
        bool empty = false;
        const auto limit = steady::now() + 20s;
        while (!empty && steady::now() < limit) {
          empty = true;
          for (const auto& key : keys) {
            const auto rows = co_await corvo::test::pending_of(client, key, "g");
            pending[key] = rows.size();
            empty = empty && rows.empty();
          }
          if (!empty) {
            co_await corvo::sleep_for(100ms);
          }
        }
        for (const auto& key : keys) {
          BOOST_TEST(pending[key] == 0u, key << ": " << pending[key] << " entries still pending");
        }
        // The healthy streams never saw an entry twice.
        for (const auto& key : keys) {
          std::size_t twice = 0;
          for (const auto& [id, runs] : (*handled)[key]) {
            twice += runs > 1 ? 1 : 0;
          }
          std::cout << "  " << key << ": " << twice << " entries handled more than once\n";
          if (key != victim_key) {
            BOOST_TEST(twice == 0u, key << ": " << twice << " entries handled twice");
          }
        }
        BOOST_TEST(!bg->done(), "the consumer kept running through the failover");
        bg->stop();
        BOOST_TEST_REQUIRE(co_await corvo::test::eventually([&] { return bg->done(); }, 20s));
      }(),
      [&] {
        out->stop = true;
        if (bg) {
          bg->stop();
        }
        appender->cancel();
        client.cancel();
      });
}
