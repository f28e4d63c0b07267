// 100,000 messages through corvo's producer and consumer on the embedded cluster: none is
// lost, each partition's messages are handled in offset order (and each key's in send
// order), handlers of different partitions run in parallel within the bound, and after
// the consumer closed the committed offsets are at the end of every partition.

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <array>
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
#include <support/kafka_committed.hpp>
#include <support/run_coroutine.hpp>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;
namespace kafka = corvo::kafka;

namespace {

constexpr int partition_count = 8;
constexpr std::size_t message_count = 100'000;
constexpr int key_count = 64;

struct handled_message {
  std::int32_t partition;
  std::int64_t offset;
  std::string value;
};

struct observations {
  std::vector<handled_message> handled;
  std::size_t running = 0;
  std::size_t max_running = 0;
  std::size_t delivered = 0;
  std::size_t delivery_errors = 0;
};

// The handler: records the message; every 100th yields to the loop while it "runs", so
// partitions overlap.
asio::awaitable<void> record(std::shared_ptr<observations> seen, const kafka::message* m) {
  ++seen->running;
  seen->max_running = std::max(seen->max_running, seen->running);
  if (m->offset() % 100 == 0) {
    const auto executor = co_await asio::this_coro::executor;
    co_await asio::post(executor, asio::use_awaitable);
  }
  seen->handled.push_back({m->partition(), m->offset(), std::string(m->value())});
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
  kafka::consumer consumer(executor, config,
                           {.topics = {"clicks"},
                            .max_partitions_in_flight = 4,
                            .max_attempts = 3,
                            .dead_letter_topic = "",
                            .max_buffered_per_partition = 256});
  auto outcome = std::make_shared<run_outcome>();
  asio::co_spawn(executor, consumer.run(recording_handler{seen}), [outcome](std::exception_ptr e) {
    outcome->failure = e;
    outcome->done = true;
  });

  kafka::producer producer(executor, config);
  std::array<int, key_count> sequence{};
  for (std::size_t i = 0; i < message_count; ++i) {
    const int key = static_cast<int>(i % key_count);
    // "k<key>:<n>": the n-th message of that key (small: the mock keeps ~5 MiB/partition).
    const std::string value = "k" + std::to_string(key) + ":" + std::to_string(sequence[key]++);
    producer.async_send(
        kafka::outgoing_message{.topic = "clicks",
                                .key = std::string_view(value).substr(0, value.find(':')),
                                .value = value},
        count_delivery{seen});
    if (i % 5000 == 4999) {
      co_await asio::post(executor, asio::use_awaitable);  // let reports and handlers run
    }
  }
  co_await producer.close(60s);
  BOOST_TEST(seen->delivered == message_count);
  BOOST_TEST(seen->delivery_errors == 0U);

  // (Named callables: GCC 12 mishandles capturing lambda temporaries in co_await.)
  const std::function<bool()> all_handled_now = [&] {
    return seen->handled.size() >= message_count;
  };
  const std::function<bool()> run_done = [&] { return outcome->done; };
  const bool all_handled = co_await wait_for(all_handled_now, std::chrono::seconds{90});
  BOOST_TEST(all_handled);
  consumer.stop();
  co_await wait_for(run_done, std::chrono::seconds{30});
  BOOST_TEST_REQUIRE(outcome->done);
  if (outcome->failure) {
    std::rethrow_exception(outcome->failure);
  }
  const auto stats = consumer.stats();
  BOOST_TEST(stats.handled == seen->handled.size());
  BOOST_TEST(stats.failed_attempts == 0U);
}

// The offsets `group` committed for each partition of `topic` (a blocking query; call it
// outside the io_context).
std::map<std::int32_t, std::int64_t> committed(const std::string& servers, const std::string& group,
                                               const std::string& topic, int partitions) {
  auto out = corvo::test::committed_offsets(servers, group, topic, partitions);
  BOOST_REQUIRE_EQUAL(out.size(), static_cast<std::size_t>(partitions));
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_consumer_delivers_every_message_in_order)

BOOST_AUTO_TEST_CASE(hundred_thousand_messages_none_lost_partition_order_kept) {
  kafka::embedded_cluster cluster{1};
  cluster.create_topic("clicks", partition_count, 1);
  kafka::client_config config(cluster.bootstrap_servers());
  config.set(kafka::client_role::consumer, "group.id", "click-counter");
  config.set(kafka::client_role::consumer, "session.timeout.ms", "6000");
  config.set(kafka::client_role::consumer, "fetch.wait.max.ms", "10");
  config.set(kafka::client_role::producer, "linger.ms", "5");

  auto seen = std::make_shared<observations>();
  asio::io_context ctx;
  corvo::test::run(ctx, scenario(config, seen));

  // None lost, none twice.
  BOOST_TEST_REQUIRE(seen->handled.size() == message_count);
  std::vector<std::string> values;
  values.reserve(message_count);
  for (const auto& h : seen->handled) {
    values.push_back(h.value);
  }
  std::sort(values.begin(), values.end());
  BOOST_TEST((std::adjacent_find(values.begin(), values.end()) == values.end()));

  // Per partition: handled in offset order, from 0 without gaps. Per key: in send order.
  std::map<std::int32_t, std::int64_t> next_offset;
  std::map<std::string, long> next_of_key;
  for (const auto& h : seen->handled) {
    auto& expected = next_offset[h.partition];
    BOOST_TEST_REQUIRE(h.offset == expected, "partition " << h.partition << " offset " << h.offset
                                                          << " expected " << expected);
    ++expected;
    const auto colon = h.value.find(':');
    auto& n = next_of_key[h.value.substr(0, colon)];
    BOOST_TEST_REQUIRE(std::stol(h.value.substr(colon + 1)) == n);
    ++n;
  }
  BOOST_TEST(next_offset.size() == static_cast<std::size_t>(partition_count));

  // Handlers of different partitions overlapped, within the bound of 4.
  BOOST_TEST(seen->max_running > 1U);
  BOOST_TEST(seen->max_running <= 4U);

  // Everything handled is committed: the group's offsets are at the partitions' ends.
  const auto offsets =
      committed(cluster.bootstrap_servers(), "click-counter", "clicks", partition_count);
  for (const auto& [partition, end] : next_offset) {
    BOOST_TEST(offsets.at(partition) == end, "partition " << partition);
  }
}

BOOST_AUTO_TEST_SUITE_END()
