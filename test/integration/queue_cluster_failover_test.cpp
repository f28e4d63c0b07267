// A reliable_queue on a 6-node Redis Cluster whose master owning the queue's slot is killed
// (SIGKILL) in the middle of a run; its replica is promoted and the consumers go on there.
//
// What the code guarantees, and this test asserts (docs/queues.md, "Cluster failover"):
// - none lost: every item whose push reached the replica (the producer waited for it with
//   WAIT) is handled at least once;
// - at least once, not exactly once: Redis replicates asynchronously, so the last moves
//   and acks the dead master answered may never have reached the replica. An item moved
//   there but not replicated is back in the queue and is delivered again; an item acked but
//   not replicated is still in its consumer's processing list, which the consumer re-reads
//   after the failed call and adopts (stats().adopted). So an item handled before the kill
//   may be handled a second time (never a third: one failover), always with attempts 0 (no
//   failure, no reaping: the heartbeat outlives the outage);
// - exactly once for every item first delivered after the promotion: from then on one
//   master holds the queue and its processing lists.
// The duplicates are counted here and reported.
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/queue/item.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/queue/reliable_queue.hpp>
#include <future>
#include <map>
#include <thread>

#include "support/queue_fixture.hpp"
#include "support/redis_cluster.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace queue = corvo::queue;
using corvo::test::background_run;
using corvo::test::eventually;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t item_count = 4000;
constexpr std::size_t kill_at = 1000;  // the master dies inside this delivery's handler
const std::string queue_name = "{jobs}:queue";

struct delivery {
  std::string consumer;
  std::uint32_t attempts = 0;
  bool after_kill = false;
  bool after_promotion = false;
};

struct fixture {
  corvo::test::redis_cluster cluster;
  asio::io_context ctx;
  redis::client client{ctx.get_executor(),
                       redis::client_config::from_cluster_seeds(cluster.seed_urls())};
  std::map<std::string, std::vector<delivery>> seen;
  std::size_t deliveries = 0;
  std::size_t owner = cluster.node_for_slot(cluster.key_slot(queue_name));
  bool killed = false;
  std::atomic<bool> promoted{false};

  fixture() {
    asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  }

  queue::queue_options options(std::string consumer) {
    queue::queue_options o;
    o.name = queue_name;
    o.consumer = std::move(consumer);
    o.max_in_flight = 16;
    o.batch = 16;
    o.block_timeout = 200ms;
    o.heartbeat_ttl = 30s;  // the failover must not make a consumer look dead
    return o;
  }
};

// Records each delivery; the kill_at-th one kills the queue's master (on the thread that
// runs the consumers, so the kill falls between two of their Redis calls, mid-run).
struct recorder {
  fixture* f;
  std::string consumer;
  asio::awaitable<void> operator()(const queue::item& it) const {
    f->seen[it.body].push_back(delivery{consumer, it.attempts, f->killed, f->promoted.load()});
    if (++f->deliveries == kill_at && !f->killed) {
      f->killed = true;
      f->cluster.kill_node(f->owner);
    }
    co_await corvo::sleep_for(1ms);
  }
};

std::vector<std::string> bodies() {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < item_count; ++i) {
    out.push_back("item-" + std::to_string(i));
  }
  return out;
}

asio::awaitable<long long> llen(redis::client& client, std::string key) {
  redis::request req;
  req.push("LLEN", key);
  redis::response<long long> resp;
  co_await client.exec(req, resp);
  co_return std::get<0>(resp).value();
}

// `field:value` of an INFO section's text, as a number (-1 when absent).
long long info_number(const std::string& info, const std::string& field) {
  const auto at = info.find(field + ":");
  if (at == std::string::npos) {
    return -1;
  }
  return std::stoll(info.substr(at + field.size() + 1));
}

// The replica of the queue's master has every write the master had when this was called
// (WAIT cannot be sent: it blocks, and the client keeps blocking commands off its shared
// connection; the replication offsets say the same).
asio::awaitable<bool> replica_caught_up(fixture& f) {
  const auto master_offset =
      info_number(f.cluster.node(f.owner).cli("INFO", "replication"), "master_repl_offset");
  std::size_t replica = f.cluster.size();
  for (const auto& n : f.cluster.nodes()) {
    if (n.role == corvo::test::redis_role::replica && n.master_id == f.cluster.node_id(f.owner)) {
      replica = n.index;
    }
  }
  if (replica == f.cluster.size() || master_offset <= 0) {
    co_return false;
  }
  co_return co_await eventually(
      [&] {
        return info_number(f.cluster.node(replica).cli("INFO", "replication"),
                           "master_repl_offset") >= master_offset;
      },
      10s);
}

asio::awaitable<void> fail_over_midway(fixture& f, queue::reliable_queue& q1,
                                       queue::reliable_queue& q2, background_run& c1,
                                       background_run& c2) {
  queue::producer jobs(f.client, queue_name);
  co_await jobs.push_raw_batch(bodies());
  // Pushes are replicated before any consumer starts: the failover can lose none of them.
  BOOST_TEST_REQUIRE(co_await replica_caught_up(f));
  c1.start(f.ctx, q1);
  c2.start(f.ctx, q2);
  std::promise<void> failover_done;
  auto failover = failover_done.get_future();
  BOOST_TEST_REQUIRE(co_await eventually([&] { return f.killed; }, 30s));
  BOOST_TEST(f.seen.size() < item_count);  // killed mid-run
  // Waiting for the promotion blocks (redis-cli): on a helper thread, so the consumers'
  // io_context runs on through the outage. Nothing is started there (see redis_server).
  std::thread waiter([&] {
    try {
      f.cluster.wait_for_failover(f.owner);
      f.promoted = true;
      failover_done.set_value();
    } catch (...) {
      failover_done.set_exception(std::current_exception());
    }
  });
  const bool promoted = co_await eventually([&] { return f.promoted.load(); }, 60s);
  waiter.join();
  failover.get();  // rethrows a failed wait
  BOOST_TEST_REQUIRE(promoted);
  BOOST_TEST_REQUIRE(co_await eventually([&] { return f.seen.size() == item_count; }, 60s),
                     f.seen.size() << " of " << item_count << " handled");
  c1.stop();
  c2.stop();
  BOOST_TEST_REQUIRE(co_await eventually([&] { return c1.done && c2.done; }, 30s));
  BOOST_TEST(c1.ended_by_stop());
  BOOST_TEST(c2.ended_by_stop());
  const queue::queue_keys keys(queue_name);
  BOOST_TEST(co_await llen(f.client, queue_name) == 0);
  BOOST_TEST(co_await llen(f.client, keys.processing("c1")) == 0);
  BOOST_TEST(co_await llen(f.client, keys.processing("c2")) == 0);
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(no_item_is_lost_when_the_queue_master_fails_over, fixture) {
  queue::reliable_queue q1(client, options("c1"), recorder{this, "c1"});
  queue::reliable_queue q2(client, options("c2"), recorder{this, "c2"});
  background_run c1, c2;  // started once the items are on the replica too
  // Stops the consumers too: a failed REQUIRE must not leave the context running for ever.
  corvo::test::run(ctx, fail_over_midway(*this, q1, q2, c1, c2), [&] {
    c1.stop();
    c2.stop();
    client.cancel();
  });

  // The replica took over the queue's slot.
  const auto new_owner = cluster.node_for_slot(cluster.key_slot(queue_name));
  BOOST_TEST(new_owner != owner);

  std::size_t duplicates = 0, first_after_kill = 0;
  for (const auto& body : bodies()) {
    const auto& d = seen[body];
    BOOST_TEST_REQUIRE(!d.empty(), body << " never handled");  // none lost
    BOOST_TEST(d.size() <= 2u, body << " handled " << d.size() << " times");
    for (const auto& one : d) {
      BOOST_TEST(one.attempts == 0u, body);
    }
    if (d.front().after_kill) {
      ++first_after_kill;
    }
    if (d.front().after_promotion) {
      BOOST_TEST(d.size() == 1u, body << ": first delivered after the promotion, yet twice");
    }
    if (d.size() == 2) {
      ++duplicates;
    }
  }
  BOOST_TEST(seen.size() == item_count);
  // The run went on on the new master: the consumers hold at most max_in_flight + batch
  // items each (taken before the kill); every other item first delivered after the kill came
  // from the promoted replica. (Not "after `promoted` was set": the helper thread notices the
  // promotion later than the consumers do, and a fast build drains the queue meanwhile.)
  BOOST_TEST(first_after_kill > 2u * (16u + 16u));
  BOOST_TEST(q1.stats().redis_errors + q2.stats().redis_errors >= 1u);
  // Every duplicate was handled first before the kill: deliveries before it number at least
  // kill_at, and the second deliveries are exactly the duplicates.
  std::size_t total = 0;
  for (const auto& [body, d] : seen) {
    total += d.size();
  }
  BOOST_TEST(total == item_count + duplicates);
  BOOST_TEST_MESSAGE("failover: " << duplicates << " item(s) handled twice, " << first_after_kill
                                  << " first delivered after the kill; adopted "
                                  << q1.stats().adopted + q2.stats().adopted << ", stale "
                                  << q1.stats().stale + q2.stats().stale << ", redis errors "
                                  << q1.stats().redis_errors + q2.stats().redis_errors);
}
