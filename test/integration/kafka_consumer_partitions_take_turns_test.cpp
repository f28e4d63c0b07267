// With one partition slot (max_partitions_in_flight = 1) and two partitions full of messages,
// the partitions take turns: a busy partition gives its slot to the waiting one after its
// fair share of messages, instead of handing it straight back to itself until it is empty.

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/kafka/producer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <support/run_coroutine.hpp>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;
namespace kafka = corvo::kafka;

namespace {

constexpr std::int64_t per_partition = 5000;

struct handled_message {
  std::int32_t partition;
  std::int64_t offset;
};

struct observations {
  std::vector<handled_message> handled;
  std::size_t running = 0;
  std::size_t max_running = 0;
  std::size_t delivered = 0;
  std::size_t delivery_errors = 0;
};

// Yields to the loop once per message, as a handler doing I/O would.
asio::awaitable<void> record(std::shared_ptr<observations> seen, const kafka::message* m) {
  ++seen->running;
  seen->max_running = std::max(seen->max_running, seen->running);
  const auto executor = co_await asio::this_coro::executor;
  co_await asio::post(executor, asio::use_awaitable);
  seen->handled.push_back({m->partition(), m->offset()});
  --seen->running;
}

struct recording_handler {
  std::shared_ptr<observations> seen;
  asio::awaitable<void> operator()(const kafka::message& m) const { return record(seen, &m); }
};

struct count_delivery {
  std::shared_ptr<observations> seen;
  void operator()(error_code ec, kafka::delivery_report) const {
    ++(ec ? seen->delivery_errors : seen->delivered);
  }
};

asio::awaitable<bool> wait_for(std::function<bool()> done, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  const auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      co_return false;
    }
    timer.expires_after(10ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
  co_return true;
}

struct run_outcome {
  bool done = false;
  std::exception_ptr failure;
};

asio::awaitable<void> scenario(kafka::client_config config, std::shared_ptr<observations> seen) {
  const auto executor = co_await asio::this_coro::executor;
  // Both partitions are full before the consumer joins, so both have messages buffered
  // from the first fetch on.
  kafka::producer producer(executor, config);
  for (std::int32_t partition = 0; partition < 2; ++partition) {
    for (std::int64_t i = 0; i < per_partition; ++i) {
      const std::string value = std::to_string(partition) + ":" + std::to_string(i);
      producer.async_send(
          kafka::outgoing_message{
              .topic = "events", .key = std::nullopt, .value = value, .partition = partition},
          count_delivery{seen});
    }
    co_await asio::post(executor, asio::use_awaitable);
  }
  co_await producer.close(60s);
  BOOST_TEST_REQUIRE(seen->delivered == static_cast<std::size_t>(2 * per_partition));

  kafka::consumer consumer(
      executor, config,
      {.topics = {"events"}, .max_partitions_in_flight = 1, .dead_letter_topic = ""});
  auto outcome = std::make_shared<run_outcome>();
  asio::co_spawn(executor, consumer.run(recording_handler{seen}), [outcome](std::exception_ptr e) {
    outcome->failure = e;
    outcome->done = true;
  });
  const std::function<bool()> all_handled = [&] {
    return seen->handled.size() >= static_cast<std::size_t>(2 * per_partition);
  };
  const bool handled = co_await wait_for(all_handled, 120s);
  BOOST_TEST(handled);
  consumer.stop();
  const std::function<bool()> run_done = [&] { return outcome->done; };
  co_await wait_for(run_done, 30s);
  BOOST_TEST_REQUIRE(outcome->done);
  if (outcome->failure) {
    std::rethrow_exception(outcome->failure);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_consumer_partitions_take_turns)

BOOST_AUTO_TEST_CASE(one_slot_two_full_partitions_the_second_starts_before_the_first_ends) {
  kafka::embedded_cluster cluster{1};
  cluster.create_topic("events", 2, 1);
  kafka::client_config config(cluster.bootstrap_servers());
  config.set(kafka::client_role::consumer, "group.id", "turns");
  config.set(kafka::client_role::consumer, "session.timeout.ms", "6000");
  config.set(kafka::client_role::consumer, "fetch.wait.max.ms", "10");
  config.set(kafka::client_role::producer, "linger.ms", "5");

  auto seen = std::make_shared<observations>();
  asio::io_context ctx;
  corvo::test::run(ctx, scenario(config, seen));

  BOOST_TEST_REQUIRE(seen->handled.size() == static_cast<std::size_t>(2 * per_partition));
  BOOST_TEST(seen->max_running == 1U);  // the slot bound held
  // Each partition in offset order, every message once.
  std::map<std::int32_t, std::int64_t> next_offset;
  for (const auto& h : seen->handled) {
    BOOST_TEST_REQUIRE(h.offset == next_offset[h.partition], "partition " << h.partition);
    ++next_offset[h.partition];
  }
  BOOST_TEST(next_offset.size() == 2U);

  // Whichever partition got the slot first, the other one's first message came before its
  // last one.
  const std::int32_t first = seen->handled.front().partition;
  const auto last_of_first =
      std::find_if(seen->handled.rbegin(), seen->handled.rend(),
                   [&](const handled_message& h) { return h.partition == first; });
  const auto first_of_other =
      std::find_if(seen->handled.begin(), seen->handled.end(),
                   [&](const handled_message& h) { return h.partition != first; });
  const auto last_index =
      seen->handled.size() - 1 - static_cast<std::size_t>(last_of_first - seen->handled.rbegin());
  const auto other_index = static_cast<std::size_t>(first_of_other - seen->handled.begin());
  BOOST_TEST(other_index < last_index, "partition " << first << " ended at #" << last_index
                                                    << ", the other one began at #" << other_index);

  // Runs of one partition between switches: every run but the first (the other partition's
  // messages may arrive a little later) and the last (the other one is done) is at most the
  // fair share of 64 messages.
  std::vector<std::size_t> runs{1};
  for (std::size_t i = 1; i < seen->handled.size(); ++i) {
    if (seen->handled[i].partition != seen->handled[i - 1].partition) {
      runs.push_back(1);
    } else {
      ++runs.back();
    }
  }
  BOOST_TEST_REQUIRE(runs.size() >= 3U);
  const auto longest_middle = *std::max_element(runs.begin() + 1, runs.end() - 1);
  BOOST_TEST(longest_middle <= 64U);
  BOOST_TEST_MESSAGE("runs " << runs.size() << ", first " << runs.front() << ", longest middle "
                             << longest_middle << ", last " << runs.back());
}

BOOST_AUTO_TEST_SUITE_END()
