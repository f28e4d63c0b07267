// reliable_queue retry delay (queue_options::retry_delay / retry_delay_max): a failed item
// waits in the queue's delayed set (a ZSET in Redis, same hash tag) for a delay doubling per
// failure up to the maximum, while other items go on; when due it is moved back to the queue
// and delivered with attempts + 1; after max_attempts it is dead-lettered as before. The
// delay lives in Redis only: a consumer that stops (or dies) during the delay loses nothing,
// another consumer delivers the item when it is due.
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/queue/admin.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/queue/reliable_queue.hpp>
#include <map>

#include "support/queue_fixture.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace queue = corvo::queue;
using corvo::test::background_run;
using corvo::test::eventually;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

struct delivery {
  std::string body;
  std::uint32_t attempts = 0;
  clock_type::time_point at;
  std::string consumer;
};

// Records every delivery; "poison" always fails, "flaky" fails on its first attempt.
struct recorder {
  std::vector<delivery>* seen;
  std::string consumer;
  asio::awaitable<void> operator()(const queue::item& it) const {
    seen->push_back({it.body, it.attempts, clock_type::now(), consumer});
    if (it.body == "poison" || (it.body == "flaky" && it.attempts == 0)) {
      throw std::runtime_error("boom on " + it.body);
    }
    co_return;
  }
};

struct fixture {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client{ctx.get_executor(), redis::client_config::from_url(server.url())};
  std::vector<delivery> seen;
  const queue::queue_keys keys{"jobs"};

  fixture() {
    asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  }

  queue::queue_options options(std::string consumer) {
    queue::queue_options o;
    o.name = "jobs";
    o.consumer = std::move(consumer);
    o.max_in_flight = 8;
    o.block_timeout = 200ms;
    o.drain_timeout = 2s;
    o.heartbeat_ttl = 5s;
    return o;
  }

  std::vector<delivery> of(const std::string& body) const {
    std::vector<delivery> out;
    for (const auto& d : seen) {
      if (d.body == body) {
        out.push_back(d);
      }
    }
    return out;
  }

  template <class Body>
  void run(Body body) {
    corvo::test::run(ctx, std::move(body), [this] { client.cancel(); });
  }
};

asio::awaitable<long long> integer(redis::client& client, std::string command, std::string key) {
  redis::request req;
  req.push(command, key);
  redis::response<long long> resp;
  co_await client.exec(req, resp);
  co_return std::get<0>(resp).value();
}

asio::awaitable<void> stop(background_run& consumer) {
  consumer.stop();
  BOOST_TEST_REQUIRE(co_await eventually([&] { return consumer.done; }, 20s));
  BOOST_TEST(consumer.ended_by_stop());
}

// The delay before delivery n+1, as the handler saw it, with 2 ms for the server's
// millisecond clock.
bool waited_at_least(const std::vector<delivery>& d, std::size_t n,
                     std::chrono::milliseconds delay) {
  return d.at(n + 1).at - d.at(n).at >= delay - 2ms;
}

asio::awaitable<void> backs_off_then_buries(fixture& f, queue::reliable_queue& q,
                                            background_run& consumer) {
  queue::producer jobs(f.client, "jobs");
  const auto poison_id = co_await jobs.push_raw("poison");
  for (int i = 0; i < 20; ++i) {
    co_await jobs.push_raw("ok" + std::to_string(i));
  }
  BOOST_TEST(co_await eventually(
      [&] { return q.stats().dead_lettered == 1 && q.stats().succeeded == 20; }, 20s));
  co_await stop(consumer);
  const auto poison = f.of("poison");
  BOOST_TEST_REQUIRE(poison.size() == 4u);  // max_attempts deliveries, then the dead letters
  for (std::uint32_t n = 0; n < 4; ++n) {
    BOOST_TEST(poison[n].attempts == n);
  }
  // 300 ms, then doubled (600) but capped at retry_delay_max (500), twice.
  BOOST_TEST(waited_at_least(poison, 0, 300ms));
  BOOST_TEST(waited_at_least(poison, 1, 500ms));
  BOOST_TEST(waited_at_least(poison, 2, 500ms));
  // The others were not held up: every ok item was handled before the poison's second try.
  for (const auto& d : f.seen) {
    if (d.body.starts_with("ok")) {
      BOOST_TEST(d.attempts == 0u);
      BOOST_TEST((d.at < poison[1].at), d.body);
    }
  }
  BOOST_TEST(q.stats().delayed == 3u);
  BOOST_TEST(q.stats().retried == 0u);
  BOOST_TEST(q.stats().promoted == 3u);
  const auto dead = co_await queue::dead_letters(f.client, "jobs", 0, 10);
  BOOST_TEST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].id == poison_id);
  BOOST_TEST(dead[0].attempts == 4u);
  BOOST_TEST(co_await integer(f.client, "ZCARD", f.keys.delayed()) == 0);
  BOOST_TEST(co_await integer(f.client, "LLEN", "jobs") == 0);
  BOOST_TEST(co_await integer(f.client, "LLEN", f.keys.processing("c1")) == 0);
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(a_failed_item_backs_off_then_is_dead_lettered_while_others_go_on, fixture) {
  auto o = options("c1");
  o.max_attempts = 4;
  o.retry_delay = 300ms;
  o.retry_delay_max = 500ms;
  queue::reliable_queue q(client, o, recorder{&seen, "c1"});
  background_run consumer;
  consumer.start(ctx, q);
  run(backs_off_then_buries(*this, q, consumer));
}

namespace {

constexpr auto long_delay = 2s;

asio::awaitable<void> survives_its_consumer(fixture& f, queue::reliable_queue& first,
                                            background_run& first_run,
                                            queue::reliable_queue& second,
                                            background_run& second_run) {
  queue::producer jobs(f.client, "jobs");
  co_await jobs.push_raw("flaky");
  BOOST_TEST_REQUIRE(co_await eventually([&] { return first.stats().delayed == 1; }, 20s));
  co_await stop(first_run);  // the consumer goes away during the delay
  // The item is only in the delayed set, in Redis: not in the queue, not in a processing list.
  BOOST_TEST(co_await integer(f.client, "ZCARD", f.keys.delayed()) == 1);
  BOOST_TEST(co_await integer(f.client, "LLEN", "jobs") == 0);
  BOOST_TEST(co_await integer(f.client, "LLEN", f.keys.processing("c1")) == 0);
  const auto info = co_await queue::inspect(f.client, "jobs");
  BOOST_TEST(info.delayed == 1u);
  BOOST_TEST(info.depth == 0u);

  second_run.start(f.ctx, second);  // another consumer (another process in real life)
  BOOST_TEST(co_await eventually([&] { return f.of("flaky").size() == 2; }, 20s));
  BOOST_TEST(co_await eventually([&] { return second.stats().succeeded == 1; }, 20s));
  co_await stop(second_run);
  BOOST_TEST(co_await integer(f.client, "ZCARD", f.keys.delayed()) == 0);
  BOOST_TEST(co_await integer(f.client, "LLEN", "jobs") == 0);
  BOOST_TEST(co_await integer(f.client, "LLEN", f.keys.processing("c2")) == 0);
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(a_delayed_item_outlives_its_consumer_and_is_delivered_by_another, fixture) {
  auto o1 = options("c1");
  o1.retry_delay = long_delay;
  auto o2 = options("c2");
  o2.retry_delay = long_delay;
  queue::reliable_queue first(client, o1, recorder{&seen, "c1"});
  queue::reliable_queue second(client, o2, recorder{&seen, "c2"});
  background_run first_run, second_run;
  first_run.start(ctx, first);
  run(survives_its_consumer(*this, first, first_run, second, second_run));
  const auto flaky = of("flaky");
  BOOST_TEST_REQUIRE(flaky.size() == 2u);
  BOOST_TEST(flaky[0].consumer == "c1");
  BOOST_TEST(flaky[0].attempts == 0u);
  BOOST_TEST(flaky[1].consumer == "c2");
  BOOST_TEST(flaky[1].attempts == 1u);
  BOOST_TEST(waited_at_least(flaky, 0, long_delay));
  BOOST_TEST(second.stats().promoted == 1u);
  BOOST_TEST(first.stats().promoted == 0u);
}
