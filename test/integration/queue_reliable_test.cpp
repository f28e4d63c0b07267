// reliable_queue in one process against a real redis-server: every item handled and acked
// exactly once (identical bodies included), failures retried then dead-lettered with the
// reason, undecodable items dead-lettered at once, the reaper returning a dead consumer's
// items (and leaving a live one's alone), a fixed consumer id recovering its previous run,
// a graceful stop handing unfinished items back uncounted, and the admin calls.
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/queue/admin.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/queue/reliable_queue.hpp>
#include <corvo/queue/typed_handlers.hpp>
#include <map>
#include <set>

#include "support/queue_fixture.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace queue = corvo::queue;
using corvo::test::background_run;
using corvo::test::eventually;
using namespace std::chrono_literals;

namespace {

struct record {
  std::string body;
  std::string id;
  std::uint32_t attempts = 0;
};

// Records every delivery; fails (throws) for bodies in `failing`, waits for ever on `hang`.
struct recorder {
  std::vector<record>* seen;
  std::set<std::string>* failing;
  asio::awaitable<void> operator()(const queue::item& it) const {
    seen->push_back({it.body, it.id, it.attempts});
    if (failing->count(it.body) != 0) {
      throw std::runtime_error("boom on " + it.body);
    }
    if (it.body == "hang") {
      co_await corvo::sleep_for(1h);
    }
  }
};

struct fixture {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client{ctx.get_executor(), redis::client_config::from_url(server.url())};
  std::vector<record> seen;
  std::set<std::string> failing;

  fixture() {
    asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  }

  queue::queue_options options(std::string name = "jobs") {
    queue::queue_options o;
    o.name = std::move(name);
    o.consumer = "c1";
    o.max_in_flight = 8;
    o.batch = 16;
    o.block_timeout = 200ms;
    o.drain_timeout = 2s;
    o.max_attempts = 3;
    o.heartbeat_ttl = 3s;
    o.reap_interval = 100ms;
    return o;
  }

  template <class Body>
  void run(Body body) {
    corvo::test::run(ctx, std::move(body), [this] { client.cancel(); });
  }

  std::size_t count(const std::string& body) const {
    return static_cast<std::size_t>(
        std::count_if(seen.begin(), seen.end(), [&](const record& r) { return r.body == body; }));
  }
};

asio::awaitable<void> stop(background_run& consumer) {
  consumer.stop();
  co_await eventually([&] { return consumer.done; }, 20s);
}

asio::awaitable<long long> llen(redis::client& client, std::string key) {
  redis::request req;
  req.push("LLEN", key);
  redis::response<long long> resp;
  co_await client.exec(req, resp);
  co_return std::get<0>(resp).value();
}

asio::awaitable<void> handles_everything_once(fixture& f, queue::reliable_queue& q,
                                              background_run& consumer) {
  queue::producer jobs(f.client, "jobs");
  std::vector<std::string> bodies;
  for (int i = 0; i < 200; ++i) {
    bodies.push_back("b" + std::to_string(i));
  }
  for (int i = 0; i < 50; ++i) {
    bodies.push_back("same");  // identical bodies: each its own item
  }
  auto ids = co_await jobs.push_raw_batch(bodies);
  BOOST_TEST(std::set<std::string>(ids.begin(), ids.end()).size() == 250u);
  BOOST_TEST(co_await eventually([&] { return q.stats().succeeded == 250; }, 20s));
  co_await stop(consumer);
  BOOST_TEST(consumer.ended_by_stop());
  BOOST_TEST(f.seen.size() == 250u);
  for (int i = 0; i < 200; ++i) {
    BOOST_TEST(f.count("b" + std::to_string(i)) == 1u);
  }
  BOOST_TEST(f.count("same") == 50u);
  std::set<std::string> handled_ids;
  for (const auto& r : f.seen) {
    handled_ids.insert(r.id);
    BOOST_TEST(r.attempts == 0u);
  }
  BOOST_TEST((handled_ids == std::set<std::string>(ids.begin(), ids.end())));
  const queue::queue_keys keys("jobs");
  BOOST_TEST(co_await llen(f.client, "jobs") == 0);
  BOOST_TEST(co_await llen(f.client, keys.processing("c1")) == 0);
  BOOST_TEST(q.stats().stale == 0u);
  BOOST_TEST(q.stats().taken == 250u);
  // A clean stop signs off: no heartbeat, not registered.
  BOOST_TEST(f.server.cli("EXISTS", keys.heartbeat("c1")) == "0");
  BOOST_TEST(f.server.cli("ZSCORE", keys.consumers(), "c1") == "");
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_item_is_handled_and_acked_once_identical_bodies_included) {
  fixture f;
  queue::reliable_queue q(f.client, f.options(), recorder{&f.seen, &f.failing});
  background_run consumer;
  consumer.start(f.ctx, q);
  f.run(handles_everything_once(f, q, consumer));
}

namespace {

asio::awaitable<void> retries_then_buries(fixture& f, queue::reliable_queue& q,
                                          background_run& consumer) {
  queue::producer jobs(f.client, "jobs");
  const auto poison_id = co_await jobs.push_raw("poison");
  for (int i = 0; i < 20; ++i) {
    co_await jobs.push_raw("ok" + std::to_string(i));
  }
  const queue::queue_keys keys("jobs");
  BOOST_TEST(co_await eventually(
      [&] { return q.stats().dead_lettered == 1 && q.stats().succeeded == 20; }, 20s));
  co_await stop(consumer);
  // Three deliveries of the poison item, attempts 0, 1, 2; then the dead letters.
  std::vector<std::uint32_t> attempts;
  for (const auto& r : f.seen) {
    if (r.body == "poison") {
      attempts.push_back(r.attempts);
      BOOST_TEST(r.id == poison_id);
    }
  }
  BOOST_TEST((attempts == std::vector<std::uint32_t>{0, 1, 2}));
  BOOST_TEST(q.stats().retried == 2u);
  const auto dead = co_await queue::dead_letters(f.client, "jobs", 0, 10);
  BOOST_TEST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].id == poison_id);
  BOOST_TEST(dead[0].attempts == 3u);
  BOOST_TEST(dead[0].body == "poison");
  BOOST_TEST(dead[0].consumer == "c1");
  BOOST_TEST(dead[0].reason.find("boom on poison") != std::string::npos);
  BOOST_TEST(dead[0].at_ms > 0);
  BOOST_TEST(co_await llen(f.client, "jobs") == 0);
  BOOST_TEST(co_await llen(f.client, keys.processing("c1")) == 0);

  // Replay: back in the queue with attempts reset; handled again (it succeeds now).
  f.failing.clear();
  background_run again;
  again.start(f.ctx, q);
  BOOST_TEST(co_await queue::replay_dead(f.client, "jobs", poison_id) == 1u);
  BOOST_TEST(co_await eventually([&] { return f.count("poison") == 4; }, 20s));
  BOOST_TEST(f.seen.back().attempts == 0u);
  BOOST_TEST(co_await queue::replay_dead(f.client, "jobs", poison_id) == 0u);  // none left
  co_await stop(again);
  BOOST_TEST(co_await llen(f.client, keys.dead()) == 0);
}

}  // namespace

BOOST_AUTO_TEST_CASE(
    a_failing_item_is_retried_then_dead_lettered_with_the_reason_while_others_go_on) {
  fixture f;
  f.failing.insert("poison");
  queue::reliable_queue q(f.client, f.options(), recorder{&f.seen, &f.failing});
  background_run consumer;
  consumer.start(f.ctx, q);
  f.run(retries_then_buries(f, q, consumer));
}

namespace {

struct order {
  std::string sku;
  int quantity = 0;
};

order tag_invoke(boost::json::value_to_tag<order>, const boost::json::value& v) {
  const auto& o = v.as_object();
  return {std::string(o.at("sku").as_string()), static_cast<int>(o.at("quantity").as_int64())};
}

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const order& o) {
  v = {{"sku", o.sku}, {"quantity", o.quantity}};
}

struct order_handler {
  std::vector<order>* orders;
  asio::awaitable<void> operator()(order o, const queue::item&) const {
    orders->push_back(std::move(o));
    co_return;
  }
};

asio::awaitable<void> typed_items(fixture& f, queue::reliable_queue& q, background_run& consumer,
                                  std::vector<order>& orders) {
  queue::producer jobs(f.client, "jobs");
  const order good{"apple", 3};
  co_await jobs.push("order", good);
  co_await jobs.push_raw("not json");
  co_await jobs.push("refund", good);
  co_await jobs.push_raw(R"({"type":"order","payload":{"sku":7}})");
  BOOST_TEST(co_await eventually(
      [&] { return q.stats().dead_lettered == 3 && q.stats().succeeded == 1; }, 20s));
  co_await stop(consumer);
  BOOST_TEST_REQUIRE(orders.size() == 1u);
  BOOST_TEST(orders[0].sku == "apple");
  BOOST_TEST(orders[0].quantity == 3);
  BOOST_TEST(q.stats().retried == 0u);  // permanent: no second delivery
  auto dead = co_await queue::dead_letters(f.client, "jobs", 0, 10);
  BOOST_TEST_REQUIRE(dead.size() == 3u);
  std::set<std::string> reasons;
  for (const auto& d : dead) {
    BOOST_TEST(d.attempts == 1u);
    reasons.insert(d.reason);
  }
  // Newest first: the bad payload, the unknown type, the text.
  BOOST_TEST(dead[0].reason.find("payload of type 'order' does not decode") != std::string::npos);
  BOOST_TEST(dead[1].reason == "no handler for item type 'refund'");
  BOOST_TEST(dead[2].reason.find("body is not valid JSON") != std::string::npos);
  BOOST_TEST(dead[2].body == "not json");
  // Purge one by id, then the rest.
  BOOST_TEST(co_await queue::purge_dead(f.client, "jobs", dead[2].id) == 1u);
  BOOST_TEST(co_await queue::purge_dead(f.client, "jobs") == 2u);
  BOOST_TEST(co_await queue::purge_dead(f.client, "jobs") == 0u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(undecodable_and_unknown_items_are_dead_lettered_at_once) {
  fixture f;
  std::vector<order> orders;
  queue::typed_handlers handlers;
  handlers.on<order>("order", order_handler{&orders});
  queue::reliable_queue q(f.client, f.options(), handlers);
  background_run consumer;
  consumer.start(f.ctx, q);
  f.run(typed_items(f, q, consumer, orders));
}

namespace {

asio::awaitable<void> reaps_the_dead(fixture& f, queue::reliable_queue& q,
                                     background_run& consumer) {
  BOOST_TEST(co_await eventually([&] { return f.seen.size() == 1; }, 20s));
  BOOST_TEST(co_await eventually(
      [&] { return q.stats().dead_lettered + q.reaped().dead_lettered == 1; }, 20s));
  co_await stop(consumer);
  const queue::queue_keys keys("jobs");
  BOOST_TEST_REQUIRE(f.seen.size() == 1u);
  BOOST_TEST(f.seen[0].body == "ghost-a");
  BOOST_TEST(f.seen[0].id == "g1");
  BOOST_TEST(f.seen[0].attempts == 1u);  // its delivery to the ghost counted
  const auto dead = co_await queue::dead_letters(f.client, "jobs", 0, 10);
  BOOST_TEST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].id == "g2");
  BOOST_TEST(dead[0].attempts == 3u);
  BOOST_TEST(dead[0].consumer == "ghost");
  BOOST_TEST(dead[0].reason == "consumer ghost stopped (heartbeat expired) during attempt 3");
  BOOST_TEST(co_await llen(f.client, keys.processing("ghost")) == 0);
  BOOST_TEST(f.server.cli("ZSCORE", keys.consumers(), "ghost") == "");  // forgotten
  // A live consumer (its heartbeat key exists) keeps its item.
  BOOST_TEST(co_await llen(f.client, keys.processing("alive")) == 1);
  BOOST_TEST(q.reaped().dead_consumers >= 1u);
  BOOST_TEST(q.reaped().requeued == 1u);
  const auto info = co_await queue::inspect(f.client, "jobs");
  BOOST_TEST(info.depth == 0u);
  BOOST_TEST(info.dead == 1u);
  BOOST_TEST_REQUIRE(info.consumers.size() == 1u);  // c1 signed off, ghost forgotten
  BOOST_TEST(info.consumers[0].id == "alive");
  BOOST_TEST(info.consumers[0].alive);
  BOOST_TEST(info.consumers[0].processing == 1u);
  BOOST_TEST(info.consumers[0].heartbeat_ttl_ms > 0);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_reaper_returns_a_dead_consumers_items_and_leaves_a_live_ones) {
  fixture f;
  const queue::queue_keys keys("jobs");
  // A dead consumer: registered long ago, no heartbeat, two items (one on its last attempt).
  f.server.cli("LPUSH", keys.processing("ghost"), queue::encode_envelope("g1", 0, "ghost-a"),
               queue::encode_envelope("g2", 2, "ghost-b"));
  f.server.cli("ZADD", keys.consumers(), "1000", "ghost");
  // A live one.
  f.server.cli("LPUSH", keys.processing("alive"), queue::encode_envelope("a1", 0, "alive-a"));
  f.server.cli("SET", keys.heartbeat("alive"), "1", "PX", "60000");
  f.server.cli("ZADD", keys.consumers(), "1000", "alive");
  queue::reliable_queue q(f.client, f.options(), recorder{&f.seen, &f.failing});
  background_run consumer;
  consumer.start(f.ctx, q);
  f.run(reaps_the_dead(f, q, consumer));
}

namespace {

asio::awaitable<void> recovers_previous_run(fixture& f, background_run& consumer) {
  BOOST_TEST(co_await eventually([&] { return f.seen.size() == 1; }, 20s));
  co_await stop(consumer);
  BOOST_TEST_REQUIRE(f.seen.size() == 1u);
  BOOST_TEST(f.seen[0].body == "left-behind");
  BOOST_TEST(f.seen[0].attempts == 1u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_fixed_consumer_id_recovers_what_its_previous_run_left) {
  fixture f;
  const queue::queue_keys keys("jobs");
  // The previous run of c1 died within its heartbeat TTL: the key is still there.
  f.server.cli("LPUSH", keys.processing("c1"), queue::encode_envelope("x1", 0, "left-behind"));
  f.server.cli("SET", keys.heartbeat("c1"), "1", "PX", "60000");
  queue::reliable_queue q(f.client, f.options(), recorder{&f.seen, &f.failing});
  background_run consumer;
  consumer.start(f.ctx, q);
  f.run(recovers_previous_run(f, consumer));
}

namespace {

asio::awaitable<void> hands_back(fixture& f, queue::reliable_queue& q, background_run& consumer,
                                 std::string& original) {
  queue::producer jobs(f.client, "jobs");
  const auto id = co_await jobs.push_raw("hang");
  original = queue::encode_envelope(id, 0, "hang");
  co_await jobs.push_raw("quick");
  BOOST_TEST(
      co_await eventually([&] { return f.count("hang") == 1 && q.stats().succeeded == 1; }, 20s));
  co_await stop(consumer);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_graceful_stop_hands_unfinished_items_back_uncounted) {
  fixture f;
  auto o = f.options();
  o.drain_timeout = 300ms;
  queue::reliable_queue q(f.client, o, recorder{&f.seen, &f.failing});
  background_run consumer;
  consumer.start(f.ctx, q);
  std::string original;
  f.run(hands_back(f, q, consumer, original));
  BOOST_TEST(consumer.ended_by_stop());
  const queue::queue_keys keys("jobs");
  // The very same bytes (attempts still 0) are back at the tail: consumed next.
  BOOST_TEST(f.server.cli("LRANGE", "jobs", "0", "-1") == original);
  BOOST_TEST(f.server.cli("LLEN", keys.processing("c1")) == "0");
  BOOST_TEST(f.server.cli("EXISTS", keys.heartbeat("c1")) == "0");
  BOOST_TEST(f.server.cli("ZSCORE", keys.consumers(), "c1") == "");
  BOOST_TEST(q.stats().handed_back == 1u);
  BOOST_TEST(q.stats().retried == 0u);
}

BOOST_AUTO_TEST_CASE(options_are_checked) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  queue::queue_options o;
  BOOST_CHECK_THROW(queue::reliable_queue(client, o, recorder{}), std::invalid_argument);
  o.name = "jobs";
  o.max_in_flight = 0;
  BOOST_CHECK_THROW(queue::reliable_queue(client, o, recorder{}), std::invalid_argument);
  o.max_in_flight = 1;
  o.heartbeat_interval = o.heartbeat_ttl;
  BOOST_CHECK_THROW(queue::reliable_queue(client, o, recorder{}), std::invalid_argument);
}
