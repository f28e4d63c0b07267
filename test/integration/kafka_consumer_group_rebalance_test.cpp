// Two consumers of one group share the partitions (cooperative-sticky); when one stops, its
// partitions move to the other and no message is lost on the way.

#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/kafka/producer.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <support/run_coroutine.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;
namespace kafka = corvo::kafka;

namespace {

constexpr int partition_count = 6;

struct member_log {
  std::vector<std::string> values;  // handled, in order
  std::set<std::int32_t> partitions_handled;
  int assignments = 0;
  int revocations = 0;
  int lost = 0;
};

struct shared_log {
  member_log a;
  member_log b;
  std::size_t produced = 0;
  std::size_t delivery_errors = 0;
  bool stop_producing = false;
};

asio::awaitable<void> record(member_log* log, std::string value, std::int32_t partition) {
  log->values.push_back(std::move(value));
  log->partitions_handled.insert(partition);
  co_return;
}

struct recorder {
  std::shared_ptr<shared_log> shared;
  member_log* log;
  asio::awaitable<void> operator()(const kafka::message& m) const {
    return record(log, std::string(m.value()), m.partition());
  }
};

struct count_delivery {
  std::shared_ptr<shared_log> shared;
  void operator()(error_code ec, kafka::delivery_report) const {
    if (ec) {
      ++shared->delivery_errors;
    }
  }
};

// Produces "e<n>" about every 2 ms until told to stop.
asio::awaitable<void> produce_steadily(kafka::client_config config,
                                       std::shared_ptr<shared_log> shared) {
  const auto executor = co_await asio::this_coro::executor;
  kafka::producer producer(executor, config);
  asio::steady_timer timer(executor);
  while (!shared->stop_producing) {
    for (int i = 0; i < 4; ++i) {
      const std::string value = "e" + std::to_string(shared->produced++);
      producer.async_send(kafka::outgoing_message{.topic = "events", .key = value, .value = value},
                          count_delivery{shared});
    }
    timer.expires_after(8ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
  co_await producer.close();
}

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

struct record_outcome {
  std::shared_ptr<run_outcome> outcome;
  void operator()(std::exception_ptr e) const {
    outcome->failure = e;
    outcome->done = true;
  }
};

kafka::consumer_options member_options(member_log* log) {
  kafka::consumer_options options;
  options.topics = {"events"};
  options.dead_letter_topic = "";
  options.on_assigned = [log](const std::vector<kafka::topic_partition>&) { ++log->assignments; };
  options.on_revoked = [log](const std::vector<kafka::topic_partition>&, bool lost) {
    ++log->revocations;
    log->lost += lost ? 1 : 0;
  };
  return options;
}

struct snapshot {
  std::vector<kafka::topic_partition> a_shared;  // A's assignment while both ran
  std::vector<kafka::topic_partition> b_shared;
  std::vector<kafka::topic_partition> b_alone;  // B's assignment after A stopped
  bool shared_reached = false;
  bool handover_reached = false;
  bool all_handled = false;
};

asio::awaitable<void> scenario(kafka::client_config config, std::shared_ptr<shared_log> shared,
                               std::shared_ptr<snapshot> seen) {
  const auto executor = co_await asio::this_coro::executor;
  asio::co_spawn(executor, produce_steadily(config, shared), asio::detached);

  kafka::consumer a(executor, config, member_options(&shared->a));
  auto a_done = std::make_shared<run_outcome>();
  asio::co_spawn(executor, a.run(recorder{shared, &shared->a}), record_outcome{a_done});
  const std::function<bool()> a_working = [&a, shared] {
    return a.assignment().size() == partition_count && shared->a.values.size() > 50;
  };
  // (Results named, never co_await inside a BOOST_TEST: GCC 12 destroys temporaries of a
  // co_await expression twice.)
  const bool a_started = co_await wait_for(a_working, std::chrono::seconds{30});
  BOOST_TEST_REQUIRE(a_started);

  // B joins: the partitions are split between the two, each handles its own.
  kafka::consumer b(executor, config, member_options(&shared->b));
  auto b_done = std::make_shared<run_outcome>();
  asio::co_spawn(executor, b.run(recorder{shared, &shared->b}), record_outcome{b_done});
  const std::function<bool()> split = [&a, &b, shared] {
    return !a.assignment().empty() && !b.assignment().empty() &&
           a.assignment().size() + b.assignment().size() == partition_count &&
           shared->b.values.size() > 20;
  };
  seen->shared_reached = co_await wait_for(split, std::chrono::seconds{60});
  seen->a_shared = a.assignment();
  seen->b_shared = b.assignment();

  // A stops: B takes over every partition.
  const std::size_t a_handled_before_stop = shared->a.values.size();
  a.stop();
  const std::function<bool()> a_finished = [a_done] { return a_done->done; };
  const bool a_stopped = co_await wait_for(a_finished, std::chrono::seconds{30});
  BOOST_TEST_REQUIRE(a_stopped);
  BOOST_TEST(!a_done->failure);
  BOOST_TEST(shared->a.values.size() >= a_handled_before_stop);
  const std::function<bool()> handover = [&b] { return b.assignment().size() == partition_count; };
  seen->handover_reached = co_await wait_for(handover, std::chrono::seconds{60});
  seen->b_alone = b.assignment();

  // Let B run on its own for a moment, then stop producing and wait for the rest.
  asio::steady_timer timer(executor, 500ms);
  co_await timer.async_wait(asio::use_awaitable);
  shared->stop_producing = true;
  const std::function<bool()> everything = [shared] {
    std::set<std::string> handled(shared->a.values.begin(), shared->a.values.end());
    handled.insert(shared->b.values.begin(), shared->b.values.end());
    return handled.size() >= shared->produced && shared->produced > 0;
  };
  seen->all_handled = co_await wait_for(everything, std::chrono::seconds{60});
  b.stop();
  const std::function<bool()> b_finished = [b_done] { return b_done->done; };
  const bool b_stopped = co_await wait_for(b_finished, std::chrono::seconds{30});
  BOOST_TEST_REQUIRE(b_stopped);
  BOOST_TEST(!b_done->failure);
  // The producer coroutine closes on its own; give it the moment it needs.
  timer.expires_after(200ms);
  co_await timer.async_wait(asio::use_awaitable);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_consumer_group_rebalance)

BOOST_AUTO_TEST_CASE(members_share_partitions_and_a_stopping_member_hands_over_without_loss) {
  kafka::embedded_cluster cluster{1};
  cluster.create_topic("events", partition_count, 1);
  kafka::client_config config(cluster.bootstrap_servers());
  config.set(kafka::client_role::consumer, "group.id", "analytics");
  config.set(kafka::client_role::consumer, "session.timeout.ms", "6000");
  config.set(kafka::client_role::consumer, "heartbeat.interval.ms", "200");
  config.set(kafka::client_role::consumer, "fetch.wait.max.ms", "10");
  config.set(kafka::client_role::producer, "linger.ms", "1");

  auto shared = std::make_shared<shared_log>();
  auto seen = std::make_shared<snapshot>();
  asio::io_context ctx;
  corvo::test::run(ctx, scenario(config, shared, seen));

  // While both ran, the partitions were split between them, with no partition twice.
  BOOST_TEST_REQUIRE(seen->shared_reached);
  std::set<kafka::topic_partition> all(seen->a_shared.begin(), seen->a_shared.end());
  all.insert(seen->b_shared.begin(), seen->b_shared.end());
  BOOST_TEST(all.size() == static_cast<std::size_t>(partition_count));
  BOOST_TEST(seen->a_shared.size() + seen->b_shared.size() ==
             static_cast<std::size_t>(partition_count));
  BOOST_TEST(shared->b.revocations + shared->a.revocations >= 1);
  BOOST_TEST(shared->a.lost == 0);
  BOOST_TEST(shared->b.lost == 0);

  // After A stopped, B owned every partition.
  BOOST_TEST(seen->handover_reached);
  BOOST_TEST(seen->b_alone.size() == static_cast<std::size_t>(partition_count));

  // No message lost: every produced value was handled by A or B.
  BOOST_TEST(shared->delivery_errors == 0U);
  BOOST_TEST(seen->all_handled);
  std::set<std::string> handled(shared->a.values.begin(), shared->a.values.end());
  handled.insert(shared->b.values.begin(), shared->b.values.end());
  std::size_t missing = 0;
  for (std::size_t i = 0; i < shared->produced; ++i) {
    missing += handled.contains("e" + std::to_string(i)) ? 0 : 1;
  }
  BOOST_TEST(missing == 0U);
  BOOST_TEST_MESSAGE("produced " << shared->produced << ", handled by A " << shared->a.values.size()
                                 << ", by B " << shared->b.values.size() << ", duplicates "
                                 << shared->a.values.size() + shared->b.values.size() -
                                        handled.size());
}

BOOST_AUTO_TEST_SUITE_END()
