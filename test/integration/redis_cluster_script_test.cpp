// redis::script on a Redis Cluster while one master is down: a script that names its keys
// is loaded (on NOSCRIPT) on the master of those keys only, so a healthy master's scripts
// keep working while another master is unreachable. (Loading it on every master would make
// the call wait for the dead one: the health of one slot owner would stop work on all.)
// A keyless script runs on a healthy master (EVAL of its source there on NOSCRIPT, not a
// SCRIPT LOAD on every master). A broadcast (SCRIPT LOAD) runs on the healthy masters and
// fails at once with not_connected naming the dead one, instead of waiting for it.
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/core/timeout.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/redis/script.hpp>
#include <iostream>
#include <map>
#include <utility>

#include "support/redis_cluster.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;

namespace {

// Never loaded before the master is killed: its first run gets NOSCRIPT.
const redis::script incr_by(R"lua(
  return redis.call('INCRBY', KEYS[1], ARGV[1])
)lua");

asio::awaitable<long long> run_script(redis::client& c, std::string key) {
  std::vector<std::string> keys{std::move(key)};
  std::vector<std::string> args{"3"};
  redis::response<long long> resp;
  co_await corvo::with_timeout(incr_by.exec(c, keys, args, resp), 5s);
  co_return std::get<0>(resp).value();
}

// Keyless, and never loaded before the kill.
const redis::script echo_arg(R"lua(
  return 'echo:' .. ARGV[1]
)lua");

// Its reply, or the error's text (bounded by 5 s: a hang fails the test).
asio::awaitable<std::string> run_keyless(redis::client& c) {
  std::vector<std::string> keys;
  std::vector<std::string> args{"x"};
  redis::response<std::string> resp;
  try {
    co_await corvo::with_timeout(echo_arg.exec(c, keys, args, resp), 5s);
  } catch (const std::exception& e) {
    co_return std::string("failed: ") + e.what();
  }
  co_return std::get<0>(resp).value();
}

// Loaded by a broadcast after the kill.
const redis::script broadcast_loaded(R"lua(
  return 'broadcast'
)lua");

// The broadcast's error code and text, or "ok" (bounded by 5 s: a hang fails the test).
asio::awaitable<std::pair<boost::system::error_code, std::string>> broadcast_load(
    redis::client& c) {
  redis::request load;
  broadcast_loaded.push_load_to(load);
  redis::response<std::string> resp;
  try {
    co_await corvo::with_timeout(c.exec(load, resp), 5s);
  } catch (const boost::system::system_error& e) {
    co_return std::make_pair(e.code(), std::string(e.what()));
  }
  co_return std::make_pair(boost::system::error_code{}, std::string("ok"));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_script_loads_on_its_own_master_while_another_master_is_down) {
  corvo::test::redis_cluster_options o;
  o.replicas_per_master = 0;  // no failover: the dead master stays dead
  o.extra_config = {"cluster-require-full-coverage no"};
  corvo::test::redis_cluster cluster(o);
  std::map<std::size_t, std::string> key_of_master;
  for (int i = 0; key_of_master.size() < 3 && i < 1000; ++i) {
    const std::string key = "{script-" + std::to_string(i) + "}:n";
    key_of_master.emplace(cluster.node_for_slot(cluster.key_slot(key)), key);
  }
  BOOST_TEST_REQUIRE(key_of_master.size() == 3u);
  const auto dead = key_of_master.begin()->first;

  asio::io_context ctx;
  redis::client client(ctx.get_executor(),
                       redis::client_config::from_cluster_seeds(cluster.seed_urls()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  std::map<std::string, long long> results;
  std::vector<std::string> keyless;
  std::pair<boost::system::error_code, std::string> broadcast;
  corvo::test::run(
      ctx,
      [&]() -> asio::awaitable<void> {
        // The client knows every master and is connected to each.
        for (const auto& [node, key] : key_of_master) {
          redis::request touch;
          touch.push("EXISTS", key);
          co_await client.exec(touch);
        }
        cluster.kill_node(dead);
        for (const auto& [node, key] : key_of_master) {
          if (node != dead) {
            results[key] = co_await run_script(client, key);
          }
        }
        // Twice per master: the round robin of keyless requests reaches each healthy one.
        for (int i = 0; i < 6; ++i) {
          keyless.push_back(co_await run_keyless(client));
        }
        broadcast = co_await broadcast_load(client);
      }(),
      [&] { client.cancel(); });
  for (const auto& [node, key] : key_of_master) {
    if (node != dead) {
      BOOST_TEST(results.at(key) == 3, key);
      BOOST_TEST(cluster.node(node).cli("SCRIPT", "EXISTS", incr_by.sha1()) == "1", key);
    }
  }
  BOOST_TEST_REQUIRE(keyless.size() == 6u);
  for (const auto& reply : keyless) {
    BOOST_TEST(reply == "echo:x");
  }
  std::cout << "broadcast with a master down: " << broadcast.second << "\n";
  BOOST_TEST((broadcast.first == redis::error::not_connected));
  BOOST_TEST(broadcast.second.find(std::to_string(cluster.node(dead).port())) != std::string::npos);
  for (const auto& [node, key] : key_of_master) {
    if (node != dead) {
      BOOST_TEST(cluster.node(node).cli("SCRIPT", "EXISTS", broadcast_loaded.sha1()) == "1", key);
    }
  }
}
