// pubsub::subscriber on a 6-node Redis Cluster: channels, patterns and shard channels on
// several masters deliver every message in publish order; after a master is killed and its
// replica promoted, every subscription is back (PUBSUB NUMSUB / SHARDNUMSUB on the masters
// prove it) and later messages arrive; a shard channel whose slot migrates (CLUSTER
// SETSLOT) keeps receiving on the new owner; plain channels whose pinned slot migrates
// (the master staying a master) keep following that master; a refused subscription (NOPERM) is all
// or nothing across slots.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/pubsub/publish.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <corvo/redis/connection.hpp>
#include <corvo/redis/error.hpp>
#include <map>

#include "support/eventually.hpp"
#include "support/redis_cluster.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace pubsub = corvo::pubsub;
using namespace std::chrono_literals;
using corvo::test::eventually;
using corvo::test::redis_cluster;

namespace {

struct log_end {
  void operator()(std::exception_ptr e) const {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        BOOST_TEST_MESSAGE("background task ended: " << ex.what());
      }
    }
  }
};

struct received_log {
  std::map<std::string, std::vector<std::string>> by_source;
  std::size_t total = 0;
};

asio::awaitable<void> receive_into(pubsub::subscriber& sub, received_log& log) {
  for (;;) {
    pubsub::message m = co_await sub.receive();
    const std::string key =
        m.kind == pubsub::message_kind::pattern ? m.pattern + ":" + m.channel : m.channel;
    log.by_source[key].push_back(std::move(m.payload));
    ++log.total;
  }
}

redis::client_config cluster_config(redis_cluster& cluster) {
  auto cfg = redis::client_config::from_cluster_seeds(cluster.seed_urls());
  cfg.cluster->node.reconnect_backoff = {10ms, 100ms};
  cfg.cluster->min_refresh_interval = 100ms;
  return cfg;
}

// A hash tag whose slot the master `index` serves (or does not serve).
std::string tag_on(redis_cluster& cluster, std::size_t index, bool on, const std::string& base) {
  for (int i = 0; i < 200; ++i) {
    const std::string tag = "{" + base + std::to_string(i) + "}";
    if ((cluster.node_for_slot(redis::key_slot(tag)) == index) == on) {
      return tag;
    }
  }
  throw std::runtime_error("no tag found");
}

std::vector<std::string> numbered(const std::string& prefix, int count) {
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    out.push_back(prefix + std::to_string(i));
  }
  return out;
}

struct fleet {
  std::vector<std::unique_ptr<pubsub::subscriber>> subs;
  std::vector<received_log> logs;

  fleet(asio::io_context& ctx, const redis::client_config& cfg, std::size_t n) : logs(n) {
    for (std::size_t i = 0; i < n; ++i) {
      subs.push_back(std::make_unique<pubsub::subscriber>(ctx.get_executor(), cfg));
      asio::co_spawn(ctx, subs.back()->run(), log_end{});
      asio::co_spawn(ctx, receive_into(*subs.back(), logs[i]), log_end{});
    }
  }
  void cancel() {
    for (auto& s : subs)
      s->cancel();
  }
  std::size_t total() const {
    std::size_t t = 0;
    for (const auto& l : logs)
      t += l.total;
    return t;
  }
};

// Are all subscriptions in place, as the masters count them?
asio::awaitable<bool> all_subscribed(redis::client& publisher, std::size_t plain,
                                     std::vector<std::string> shards, std::size_t per_shard) {
  try {
    std::vector<std::string> asked{"news"};
    auto counts = co_await pubsub::numsub(publisher, asked);
    if (counts["news"] != static_cast<std::int64_t>(plain)) {
      co_return false;
    }
    auto shard_counts = co_await pubsub::shard_numsub(publisher, shards);
    for (const auto& shard : shards) {
      if (shard_counts[shard] != static_cast<std::int64_t>(per_shard)) {
        co_return false;
      }
    }
    co_return true;
  } catch (const boost::system::system_error&) {
    co_return false;
  }
}

asio::awaitable<bool> wait_all_subscribed(redis::client& publisher, std::size_t plain,
                                          std::vector<std::string> shards, std::size_t per_shard) {
  for (int i = 0; i < 1500; ++i) {
    if (co_await all_subscribed(publisher, plain, shards, per_shard)) {
      co_return true;
    }
    co_await corvo::sleep_for(20ms);
  }
  co_return false;
}

asio::awaitable<void> publish_round(redis::client& publisher, std::vector<std::string> shards,
                                    std::vector<std::string> payloads) {
  for (const auto& payload : payloads) {
    co_await pubsub::publish(publisher, "news", payload);
    for (const auto& shard : shards) {
      co_await pubsub::spublish(publisher, shard, payload);
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pubsub_cluster)

BOOST_AUTO_TEST_CASE(every_subscription_is_back_after_a_master_failover) {
  redis_cluster cluster;
  const std::size_t victim = cluster.masters().front();
  const std::string on_victim = tag_on(cluster, victim, true, "v");
  // A second shard channel on the victim, in another slot: both are restored on the promoted
  // replica, which proves the resubscription goes slot by slot (one SSUBSCRIBE naming both
  // would be refused with CROSSSLOT).
  std::string on_victim_too = tag_on(cluster, victim, true, "w");
  for (int i = 0; redis::key_slot(on_victim_too) == redis::key_slot(on_victim); ++i) {
    on_victim_too = tag_on(cluster, victim, true, "w" + std::to_string(i));
  }
  const std::string elsewhere = tag_on(cluster, victim, false, "e");
  const std::vector<std::string> shards{on_victim, on_victim_too, elsewhere};

  asio::io_context ctx;
  const auto cfg = cluster_config(cluster);
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), log_end{});
  constexpr std::size_t n = 9;  // pinned round-robin over the 3 masters
  fleet f(ctx, cfg, n);

  std::int64_t plain_on_victim = 0;
  const auto scenario = [&]() -> asio::awaitable<void> {
    for (auto& sub : f.subs) {
      std::vector<std::string> channels{"news"};
      co_await sub->subscribe(channels);
      std::vector<std::string> patterns{"new*"};
      co_await sub->psubscribe(patterns);
      co_await sub->ssubscribe(shards);
    }
    BOOST_REQUIRE(co_await wait_all_subscribed(publisher, n, shards, n));
    std::vector<std::string> first_round(1, "before");
    co_await publish_round(publisher, shards, first_round);
    BOOST_REQUIRE(co_await eventually([&] { return f.total() == n * 5; }, 20s));

    plain_on_victim = std::stoll(
        cluster.node(victim).cli("PUBSUB", "NUMSUB", "news").substr(5));  // "news\n<count>"
    cluster.kill_node(victim);
    cluster.wait_for_failover(victim);

    BOOST_REQUIRE(co_await wait_all_subscribed(publisher, n, shards, n));
    co_await publish_round(publisher, shards, numbered("after-", 20));
    BOOST_REQUIRE(co_await eventually([&] { return f.total() == n * 5 * 21; }, 30s));
  };
  corvo::test::run(ctx, scenario(), [&] {
    publisher.cancel();
    f.cancel();
  });

  BOOST_TEST(plain_on_victim > 0);  // some subscribers had their channels on the victim
  auto expected = numbered("after-", 20);
  expected.insert(expected.begin(), "before");
  std::uint64_t resubscriptions = 0;
  for (std::size_t i = 0; i < n; ++i) {
    BOOST_TEST(f.logs[i].by_source["news"] == expected);
    BOOST_TEST(f.logs[i].by_source["new*:news"] == expected);
    BOOST_TEST(f.logs[i].by_source[on_victim] == expected);
    BOOST_TEST(f.logs[i].by_source[on_victim_too] == expected);
    BOOST_TEST(f.logs[i].by_source[elsewhere] == expected);
    // The shard channels on the victim came back on every subscriber.
    BOOST_TEST(f.subs[i]->stats().resubscriptions >= 2u);
    resubscriptions += f.subs[i]->stats().resubscriptions;
  }
  // Each subscriber: 2 shard channels, plus channel and pattern when pinned to the victim.
  BOOST_TEST(resubscriptions == 2 * n + 2 * static_cast<std::uint64_t>(plain_on_victim));
}

// Moves an empty slot from its owner to `target` (IMPORTING / MIGRATING / NODE on every
// master).
void migrate_slot(redis_cluster& cluster, int slot, std::size_t target) {
  const std::size_t source = cluster.node_for_slot(slot);
  const std::string s = std::to_string(slot);
  cluster.node(target).cli("CLUSTER", "SETSLOT", s, "IMPORTING", cluster.node_id(source));
  cluster.node(source).cli("CLUSTER", "SETSLOT", s, "MIGRATING", cluster.node_id(target));
  for (std::size_t m : cluster.masters()) {
    cluster.node(m).cli("CLUSTER", "SETSLOT", s, "NODE", cluster.node_id(target));
  }
}

std::string numsub_on(redis_cluster& cluster, std::size_t node, const std::string& channel) {
  return cluster.node(node).cli("PUBSUB", "NUMSUB", channel);
}

// The pinned slot of a subscriber's plain channels migrates while its master stays a
// master: once the subscriber's client has the new map, it pins another slot of the same
// master, so later SUBSCRIBE / UNSUBSCRIBE still reach the connection holding the
// subscriptions (without the re-pin they would go to the slot's new owner: a second
// subscription there, and an UNSUBSCRIBE that leaves the first one in place).
asio::awaitable<void> plain_channels_follow_their_pinned_master(redis_cluster& cluster,
                                                                redis::client& publisher,
                                                                pubsub::subscriber& sub,
                                                                received_log& log) {
  std::vector<std::string> first{"plain-a"};
  co_await sub.subscribe(first);
  const std::uint16_t pinned_slot = sub.pin_slot();
  const std::size_t holder = cluster.node_for_slot(pinned_slot);
  std::size_t other = 0;
  for (std::size_t m : cluster.masters()) {
    if (m != holder) {
      other = m;
      break;
    }
  }
  BOOST_TEST_REQUIRE(numsub_on(cluster, holder, "plain-a") == "plain-a\n1");
  co_await pubsub::publish(publisher, "plain-a", "a-before");
  BOOST_REQUIRE(co_await eventually([&] { return log.total == 1; }, 20s));

  migrate_slot(cluster, pinned_slot, other);
  const std::string other_address = cluster.node(other).address();
  BOOST_REQUIRE(co_await eventually(
      [&] {
        const auto map = sub.client().cluster()->topology();
        const auto* owner = map.master_of(pinned_slot);
        return owner != nullptr && owner->address() == other_address;
      },
      20s));  // the subscriber's client refreshed its map (refresh_interval 200 ms)
  BOOST_REQUIRE(co_await eventually([&] { return sub.pin_slot() != pinned_slot; }, 20s));
  BOOST_TEST(cluster.node_for_slot(sub.pin_slot()) == holder);  // same master, another slot

  std::vector<std::string> second{"plain-b"};
  co_await sub.subscribe(second);
  BOOST_TEST(numsub_on(cluster, holder, "plain-b") == "plain-b\n1");
  BOOST_TEST(numsub_on(cluster, other, "plain-b") == "plain-b\n0");
  co_await sub.unsubscribe(first);
  BOOST_TEST(numsub_on(cluster, holder, "plain-a") == "plain-a\n0");
  co_await pubsub::publish(publisher, "plain-a", "a-after");  // not subscribed any more
  co_await pubsub::publish(publisher, "plain-b", "b-after");
  BOOST_REQUIRE(co_await eventually([&] { return log.total == 2; }, 20s));
  co_await pubsub::publish(publisher, "plain-b", "b-last");
  BOOST_REQUIRE(co_await eventually([&] { return log.total == 3; }, 20s));
  BOOST_TEST(sub.stats().resubscriptions == 0u);  // the master never left: nothing restored
}

BOOST_AUTO_TEST_CASE(a_shard_channel_keeps_receiving_after_its_slot_migrates) {
  redis_cluster cluster;
  const std::string channel = "{moving}";
  const int slot = redis::key_slot(channel);
  const std::size_t source = cluster.node_for_slot(slot);
  std::size_t target = 0;
  for (std::size_t m : cluster.masters()) {
    if (m != source) {
      target = m;
      break;
    }
  }

  asio::io_context ctx;
  const auto cfg = cluster_config(cluster);
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), log_end{});
  fleet f(ctx, cfg, 3);
  auto plain_cfg = cfg;
  plain_cfg.cluster->refresh_interval = 200ms;  // sees the migration without a MOVED
  pubsub::subscriber plain(ctx.get_executor(), plain_cfg);
  asio::co_spawn(ctx, plain.run(), log_end{});
  received_log plain_log;
  asio::co_spawn(ctx, receive_into(plain, plain_log), log_end{});

  const auto scenario = [&]() -> asio::awaitable<void> {
    for (auto& sub : f.subs) {
      std::vector<std::string> shard_channels{channel};
      co_await sub->ssubscribe(shard_channels);
    }
    std::vector<std::string> asked{channel};
    BOOST_REQUIRE(co_await wait_all_subscribed(publisher, 0, asked, 3));
    co_await publish_round(publisher, asked, numbered("before-", 10));
    BOOST_REQUIRE(co_await eventually([&] { return f.total() == 30; }, 20s));

    std::vector<std::uint64_t> moved_before;
    for (auto& sub : f.subs) {
      moved_before.push_back(sub->client().cluster()->stats().moved);
    }

    // The slot holds no keys: IMPORTING / MIGRATING / NODE on every master moves it. The
    // source's unsolicited SUNSUBSCRIBE reaches each subscriber while its slot map still
    // names the source, so its resubscription is sent there first and answered MOVED.
    migrate_slot(cluster, slot, target);

    BOOST_REQUIRE(co_await eventually(
        [&] {
          for (auto& sub : f.subs) {
            if (sub->stats().resubscriptions != 1)
              return false;
          }
          return true;
        },
        20s));
    // The MOVED on the resubscription was followed (a refresh, then the new owner), not
    // taken as a failed subscription.
    for (std::size_t i = 0; i < f.subs.size(); ++i) {
      BOOST_TEST(f.subs[i]->client().cluster()->stats().moved > moved_before[i]);
    }
    BOOST_REQUIRE(co_await wait_all_subscribed(publisher, 0, asked, 3));
    co_await publish_round(publisher, asked, numbered("after-", 10));
    BOOST_REQUIRE(co_await eventually([&] { return f.total() == 60; }, 20s));
    // Served by the target now, with all three subscribers there and none left behind.
    BOOST_TEST(cluster.node(target).cli("PUBSUB", "SHARDNUMSUB", channel) == channel + "\n3");
    BOOST_TEST(cluster.node(source).cli("PUBSUB", "SHARDNUMSUB", channel) == channel + "\n0");

    // Same cluster, second part: a plain subscriber whose pinned slot migrates.
    co_await plain_channels_follow_their_pinned_master(cluster, publisher, plain, plain_log);
  };
  corvo::test::run(ctx, scenario(), [&] {
    publisher.cancel();
    f.cancel();
    plain.cancel();
  });
  BOOST_TEST(plain_log.by_source["plain-a"] == std::vector<std::string>{"a-before"});
  BOOST_TEST(plain_log.by_source["plain-b"] == (std::vector<std::string>{"b-after", "b-last"}));

  BOOST_TEST(cluster.node_for_slot(slot) == target);
  auto expected = numbered("before-", 10);
  const auto after = numbered("after-", 10);
  expected.insert(expected.end(), after.begin(), after.end());
  for (auto& log : f.logs) {
    BOOST_TEST(log.by_source[channel] == expected);
  }
}

BOOST_AUTO_TEST_CASE(a_refused_subscription_is_all_or_nothing_on_a_cluster) {
  corvo::test::redis_cluster_options options;
  options.extra_config.push_back("user reader on >pw ~* resetchannels &allowed* +@all");
  redis_cluster cluster(options);
  // Two shard channels on two different masters: the cluster client subscribes them slot by
  // slot, so the allowed one is subscribed before the other is refused, then undone.
  const std::size_t first = cluster.masters().at(0);
  const std::string allowed = "allowed" + tag_on(cluster, first, true, "p");
  const std::string secret = "secret" + tag_on(cluster, first, false, "q");

  asio::io_context ctx;
  auto cfg = cluster_config(cluster);
  cfg.cluster->node.username = "reader";
  cfg.cluster->node.password = "pw";
  redis::client admin(ctx.get_executor(), cluster_config(cluster));  // default user
  asio::co_spawn(ctx, admin.run(), log_end{});
  pubsub::subscriber sub(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, sub.run(), log_end{});
  received_log log;
  asio::co_spawn(ctx, receive_into(sub, log), log_end{});

  const auto scenario = [&]() -> asio::awaitable<void> {
    boost::system::error_code shard_error, plain_error;
    std::vector<std::string> both{allowed, secret};
    try {
      co_await sub.ssubscribe(both);
    } catch (const boost::system::system_error& e) {
      shard_error = e.code();
    }
    BOOST_TEST(shard_error == boost::system::error_code(redis::error::subscription_refused),
               shard_error.message());
    BOOST_TEST(sub.shard_channels().empty());
    BOOST_TEST(sub.stats().refused == 1u);
    std::vector<std::string> asked{allowed, secret};
    auto counts = co_await pubsub::shard_numsub(admin, asked);
    BOOST_TEST(counts[allowed] == 0);  // undone
    BOOST_TEST(counts[secret] == 0);

    std::vector<std::string> plain{"secret-news"};
    try {
      co_await sub.subscribe(plain);
    } catch (const boost::system::system_error& e) {
      plain_error = e.code();
    }
    BOOST_TEST(plain_error == boost::system::error_code(redis::error::subscription_refused),
               plain_error.message());
    BOOST_TEST(sub.channels().empty());

    // The connections stay usable: an allowed shard channel subscribes and delivers.
    std::vector<std::string> ok{allowed};
    co_await sub.ssubscribe(ok);
    co_await pubsub::spublish(admin, allowed, "hi");
    BOOST_REQUIRE(co_await eventually([&] { return log.total == 1; }, 20s));
  };
  corvo::test::run(ctx, scenario(), [&] {
    admin.cancel();
    sub.cancel();
  });
  BOOST_TEST(log.by_source[allowed] == std::vector<std::string>{"hi"});
}

BOOST_AUTO_TEST_SUITE_END()
