// A rewind of a partition's fetch position within the assignment (here rd_kafka_seek on the
// consumer's handle; an offset reset or a truncated log look the same to the consumer) is
// followed: the messages from the new position are handled again, in order, and the
// committed offset ends after the last one. Before, offsets at or below one already seen
// were skipped as duplicates, so the seek was silently ignored.

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/kafka/producer.hpp>
#include <functional>
#include <memory>
#include <string>
#include <support/kafka_committed.hpp>
#include <support/run_coroutine.hpp>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
namespace kafka = corvo::kafka;

namespace {

constexpr int message_count = 10;

struct observations {
  std::vector<std::int64_t> handled;  // offsets, in handling order
  kafka::consumer* consumer = nullptr;
  bool sought = false;
  int seek_error = 0;
};

// On the first time offset 5 is handled, seeks partition 0 back to offset 2 (asynchronous:
// timeout 0 does not block the loop).
asio::awaitable<void> record(std::shared_ptr<observations> seen, std::int64_t offset) {
  seen->handled.push_back(offset);
  if (offset == 5 && !seen->sought) {
    seen->sought = true;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, "ledger", 0)->offset = 2;
    rd_kafka_error_t* error = rd_kafka_seek_partitions(seen->consumer->native_handle(), list, 0);
    if (error != nullptr) {
      seen->seek_error = static_cast<int>(rd_kafka_error_code(error));
      rd_kafka_error_destroy(error);
    }
    rd_kafka_topic_partition_list_destroy(list);
  }
  co_return;
}

struct recording_handler {
  std::shared_ptr<observations> seen;
  asio::awaitable<void> operator()(const kafka::message& m) const {
    return record(seen, m.offset());
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

// After the first 0..5 and the seek, offsets 2..9 were handled again, in this order, at the
// end of the list.
bool handled_again_from_2(const std::vector<std::int64_t>& handled) {
  if (handled.size() < 6 + (message_count - 2)) {
    return false;
  }
  std::vector<std::int64_t> expected;
  for (std::int64_t o = 2; o < message_count; ++o) {
    expected.push_back(o);
  }
  return std::equal(expected.rbegin(), expected.rend(), handled.rbegin());
}

asio::awaitable<void> scenario(kafka::client_config config, std::shared_ptr<observations> seen) {
  const auto executor = co_await asio::this_coro::executor;
  {
    kafka::producer producer(executor, config);
    for (int i = 0; i < message_count; ++i) {
      const std::string value = "entry-" + std::to_string(i);
      co_await producer.send("ledger", std::nullopt, value);
    }
    co_await producer.close(30s);
  }
  kafka::consumer consumer(executor, config, {.topics = {"ledger"}, .dead_letter_topic = ""});
  seen->consumer = &consumer;
  auto outcome = std::make_shared<run_outcome>();
  asio::co_spawn(executor, consumer.run(recording_handler{seen}), [outcome](std::exception_ptr e) {
    outcome->failure = e;
    outcome->done = true;
  });
  const std::function<bool()> replayed = [seen] {
    return seen->sought && handled_again_from_2(seen->handled);
  };
  const bool reached = co_await wait_for(replayed, 60s);
  BOOST_TEST(reached);
  consumer.stop();
  const std::function<bool()> run_done = [outcome] { return outcome->done; };
  co_await wait_for(run_done, 30s);
  BOOST_TEST_REQUIRE(outcome->done);
  if (outcome->failure) {
    std::rethrow_exception(outcome->failure);
  }
}

// The offset `group` committed for partition 0 of "ledger" (a blocking query).
std::int64_t committed(const std::string& servers, const std::string& group) {
  const auto out = corvo::test::committed_offsets(servers, group, "ledger");
  BOOST_REQUIRE_EQUAL(out.size(), 1U);
  return out.begin()->second;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_consumer_follows_a_seek_back)

BOOST_AUTO_TEST_CASE(messages_after_a_seek_back_are_handled_again_in_order) {
  kafka::embedded_cluster cluster{1};
  cluster.create_topic("ledger", 1, 1);
  kafka::client_config config(cluster.bootstrap_servers());
  config.set(kafka::client_role::consumer, "group.id", "auditor");
  config.set(kafka::client_role::consumer, "session.timeout.ms", "6000");
  config.set(kafka::client_role::consumer, "fetch.wait.max.ms", "10");
  config.set(kafka::client_role::producer, "linger.ms", "1");

  auto seen = std::make_shared<observations>();
  asio::io_context ctx;
  corvo::test::run(ctx, scenario(config, seen));

  BOOST_TEST(seen->seek_error == 0);
  // 0..5 first; after the seek (buffered messages of the old position may still be handled
  // until the first re-fetched one arrives) 2..9 again, in order, to the end.
  BOOST_TEST_REQUIRE(seen->handled.size() >= 6U);
  BOOST_TEST((std::vector<std::int64_t>(seen->handled.begin(), seen->handled.begin() + 6) ==
              std::vector<std::int64_t>{0, 1, 2, 3, 4, 5}));
  BOOST_TEST(handled_again_from_2(seen->handled));
  BOOST_TEST(committed(cluster.bootstrap_servers(), "auditor") == message_count);
}

BOOST_AUTO_TEST_SUITE_END()
