// A slot migrates between masters (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE in small
// batches, SETSLOT NODE) while clients read and write its keys: the client follows ASK
// during the migration and MOVED after it, and no request fails or sees a wrong value. A
// shard channel of that slot is subscribed again on the new owner after the server's
// sunsubscribe.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/cluster/cluster_client.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <corvo/redis/connection.hpp>
#include <sstream>

#include "support/redis_cluster.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using corvo::test::redis_cluster;

namespace {

constexpr int key_count = 300;
constexpr int writers = 4;

std::string key_of(int i) {
  return "{mig}:" + std::to_string(i);
}

struct traffic_outcome {
  int operations = 0;
  int failures = 0;
  int mismatches = 0;
  std::vector<std::string> errors;
  bool stop = false;
};

// Writer `id` owns the keys i with i % writers == id: SET a new value, GET it back, and
// now and then an MGET of two of its keys (TRYAGAIN while they sit on both nodes).
asio::awaitable<void> traffic(redis::cluster_client& client, int id, traffic_outcome& out) {
  for (int round = 0; !out.stop; ++round) {
    for (int i = id; i < key_count && !out.stop; i += writers) {
      const std::string value = std::to_string(round) + ":" + std::to_string(i);
      redis::request req;
      req.push("SET", key_of(i), value);
      req.push("GET", key_of(i));
      if (i + writers < key_count) {
        req.push("MGET", key_of(i), key_of(i + writers));
      }
      redis::response<std::string, std::string, std::vector<std::optional<std::string>>> resp;
      try {
        co_await client.exec(req, resp);
        ++out.operations;
        if (std::get<1>(resp).value() != value) {
          ++out.mismatches;
        }
        if (i + writers < key_count && std::get<2>(resp).value().at(0) != value) {
          ++out.mismatches;
        }
      } catch (const std::exception& e) {
        ++out.failures;
        if (out.errors.size() < 5) {
          out.errors.push_back(e.what());
        }
      }
    }
  }
}

struct admin {
  redis::connection& conn;
  std::string id;
  std::uint16_t port;
};

// (Arguments by value and no braced lists: GCC 12 rejects braced lists of strings inside a
// coroutine with "array used as initializer".)
template <class... Args>
asio::awaitable<std::string> command(redis::connection& conn, std::string name, Args... args) {
  redis::request req;
  req.push(name, args...);
  redis::response<std::string> resp;
  co_await conn.exec(req, resp);
  co_return std::get<0>(resp).value();
}

asio::awaitable<std::vector<std::string>> keys_in_slot(redis::connection& conn, int slot) {
  redis::request req;
  req.push("CLUSTER", "GETKEYSINSLOT", slot, 10);
  redis::response<std::vector<std::string>> resp;
  co_await conn.exec(req, resp);
  co_return std::get<0>(resp).value();
}

struct subscription_outcome {
  std::vector<std::string> received;
};

asio::awaitable<void> collect_messages(redis::cluster_client& client, subscription_outcome& out) {
  for (;;) {
    auto push = co_await client.receive();
    if (push.size() >= 4 && push[1].value == "smessage") {
      out.received.push_back(push[3].value);
    }
  }
}

// Publishes `message` until the subscriber got it (it may be re-subscribing right now).
asio::awaitable<bool> publish_until_received(redis::cluster_client& client,
                                             subscription_outcome& out, std::string message) {
  for (int i = 0; i < 300; ++i) {
    redis::request req;
    req.push("SPUBLISH", "{mig}", message);
    co_await client.exec(req);
    for (int j = 0; j < 10; ++j) {
      if (std::find(out.received.begin(), out.received.end(), message) != out.received.end()) {
        co_return true;
      }
      co_await corvo::sleep_for(5ms);
    }
  }
  co_return false;
}

asio::awaitable<void> wait_connected(redis::connection& conn) {
  for (int i = 0; i < 5000 && !conn.is_connected(); ++i) {
    co_await corvo::sleep_for(2ms);
  }
  BOOST_REQUIRE(conn.is_connected());
}

struct migration_outcome {
  traffic_outcome traffic;
  subscription_outcome subscription;
  bool received_before = false;
  bool received_after = false;
  std::size_t migrated_keys = 0;
  std::uint64_t ask_during_migration = 0;
};

asio::awaitable<void> migrate_under_traffic(redis::cluster_client& client, admin source,
                                            admin target, std::vector<admin> others, int slot,
                                            migration_outcome& out) {
  auto ex = co_await asio::this_coro::executor;
  co_await wait_connected(source.conn);
  co_await wait_connected(target.conn);
  for (auto& other : others) {
    co_await wait_connected(other.conn);
  }
  while (!client.has_topology()) {
    co_await corvo::sleep_for(2ms);
  }
  asio::co_spawn(ex, collect_messages(client, out.subscription), asio::detached);
  const std::vector<std::string> channels{"{mig}"};
  co_await client.ssubscribe(channels);
  out.received_before = co_await publish_until_received(client, out.subscription, "before");

  corvo::task_group group(ex);
  for (int id = 0; id < writers; ++id) {
    co_await group.spawn(traffic(client, id, out.traffic));
  }
  co_await corvo::sleep_for(100ms);

  const std::string s = std::to_string(slot);
  co_await command(target.conn, "CLUSTER", "SETSLOT", s, "IMPORTING", source.id);
  co_await command(source.conn, "CLUSTER", "SETSLOT", s, "MIGRATING", target.id);
  for (;;) {
    const auto keys = co_await keys_in_slot(source.conn, slot);
    if (keys.empty()) {
      break;
    }
    co_await command(source.conn, "MIGRATE", "127.0.0.1", std::to_string(target.port), "", "0",
                     "5000", "KEYS", keys);
    out.migrated_keys += keys.size();
    co_await corvo::sleep_for(20ms);  // traffic meets the half-migrated slot
  }
  out.ask_during_migration = client.stats().ask;
  co_await command(target.conn, "CLUSTER", "SETSLOT", s, "NODE", target.id);
  co_await command(source.conn, "CLUSTER", "SETSLOT", s, "NODE", target.id);
  for (auto& other : others) {
    co_await command(other.conn, "CLUSTER", "SETSLOT", s, "NODE", target.id);
  }
  co_await corvo::sleep_for(300ms);  // traffic now meets MOVED
  out.traffic.stop = true;
  co_await group.join();

  out.received_after = co_await publish_until_received(client, out.subscription, "after");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_cluster_slot_migration)

BOOST_AUTO_TEST_CASE(ask_then_moved_during_a_slot_migration_fail_no_request) {
  redis_cluster cluster;
  const int slot = redis::key_slot("{mig}");
  const std::size_t source_index = cluster.node_for_slot(slot);
  std::vector<std::size_t> other_indices;
  for (std::size_t m : cluster.masters()) {
    if (m != source_index) {
      other_indices.push_back(m);
    }
  }
  BOOST_REQUIRE(other_indices.size() == 2U);
  const std::size_t target_index = other_indices.front();
  other_indices.erase(other_indices.begin());

  asio::io_context ctx;
  redis::cluster_options opts;
  opts.seeds = cluster.seed_urls();
  opts.node.reconnect_backoff = {10ms, 100ms};
  opts.min_refresh_interval = 100ms;
  redis::cluster_client client(ctx.get_executor(), opts);
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});

  auto admin_config = [&](std::size_t i) { return redis::config::from_url(cluster.node(i).url()); };
  redis::connection source_conn(ctx.get_executor(), admin_config(source_index));
  redis::connection target_conn(ctx.get_executor(), admin_config(target_index));
  std::vector<std::unique_ptr<redis::connection>> other_conns;
  std::vector<admin> others;
  std::vector<redis::connection*> all{&source_conn, &target_conn};
  for (std::size_t i : other_indices) {
    other_conns.push_back(std::make_unique<redis::connection>(ctx.get_executor(), admin_config(i)));
    others.push_back(admin{*other_conns.back(), cluster.node_id(i), cluster.node(i).port()});
    all.push_back(other_conns.back().get());
  }
  for (auto* conn : all) {
    asio::co_spawn(ctx, conn->run(), [](std::exception_ptr) {});
  }

  migration_outcome out;
  corvo::test::run(
      ctx,
      migrate_under_traffic(
          client,
          admin{source_conn, cluster.node_id(source_index), cluster.node(source_index).port()},
          admin{target_conn, cluster.node_id(target_index), cluster.node(target_index).port()},
          others, slot, out),
      [&] {
        client.cancel();
        for (auto* conn : all) {
          conn->cancel();
        }
      });

  const auto& stats = client.stats();
  BOOST_TEST_MESSAGE("migrated " << out.migrated_keys << " keys under " << out.traffic.operations
                                 << " requests: ASK " << stats.ask << ", MOVED " << stats.moved
                                 << ", retries " << stats.retries << ", refreshes "
                                 << stats.refreshes);
  for (const auto& e : out.traffic.errors) {
    BOOST_TEST_MESSAGE("failure: " << e);
  }
  BOOST_TEST(out.traffic.failures == 0);
  BOOST_TEST(out.traffic.mismatches == 0);
  BOOST_TEST(out.traffic.operations > 100);
  BOOST_TEST(out.migrated_keys > 0U);
  BOOST_TEST(out.ask_during_migration > 0U);
  BOOST_TEST(stats.moved > 0U);
  // The slot is the target's now, and the data went with it.
  BOOST_TEST(cluster.node_for_slot(slot) == target_index);
  BOOST_TEST(cluster.node(target_index).cli("CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)) ==
             std::to_string(key_count));
  // The shard channel followed the slot.
  BOOST_TEST(out.received_before);
  BOOST_TEST(out.received_after);
  BOOST_TEST(stats.resubscribed >= 1U);
}

BOOST_AUTO_TEST_SUITE_END()
