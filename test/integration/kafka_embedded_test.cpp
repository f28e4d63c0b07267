// The embedded Kafka behind the configuration (`bootstrap.servers = embedded:N`) and as a
// standalone process (`corvo kafka embedded`) that other programs such as kcat can use.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/core/config.hpp>
#include <corvo/kafka/config.hpp>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/kafka/producer.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <support/child_process.hpp>
#include <support/corvo_program.hpp>
#include <support/run_coroutine.hpp>
#include <support/temp_dir.hpp>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
namespace kafka = corvo::kafka;

namespace {

struct received {
  std::vector<std::string> values;
};

asio::awaitable<void> remember(std::shared_ptr<received> out, std::string value) {
  out->values.push_back(std::move(value));
  co_return;
}

struct remember_value {
  std::shared_ptr<received> out;
  asio::awaitable<void> operator()(const kafka::message& m) const {
    return remember(out, std::string(m.value()));
  }
};

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

asio::awaitable<void> round_trip(kafka::client_config config, std::shared_ptr<received> out) {
  const auto executor = co_await asio::this_coro::executor;
  {
    kafka::producer producer(executor, config);
    for (int i = 0; i < 10; ++i) {
      const std::string value = "task-" + std::to_string(i);
      co_await producer.send("tasks", std::nullopt, value);
    }
    co_await producer.close();
  }
  kafka::consumer_options options;
  options.topics = {"tasks"};
  kafka::consumer consumer(executor, config, std::move(options));
  auto outcome = std::make_shared<run_outcome>();
  asio::co_spawn(executor, consumer.run(remember_value{out}), record_outcome{outcome});
  const std::function<bool()> all = [out] { return out->values.size() >= 10; };
  const bool got_all = co_await wait_for(all, std::chrono::seconds{60});
  BOOST_TEST(got_all);
  consumer.stop();
  const std::function<bool()> finished = [outcome] { return outcome->done; };
  const bool stopped = co_await wait_for(finished, std::chrono::seconds{30});
  BOOST_TEST_REQUIRE(stopped);
  if (outcome->failure) {
    std::rethrow_exception(outcome->failure);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_embedded)

BOOST_AUTO_TEST_CASE(embedded_bootstrap_servers_share_one_in_process_cluster) {
  const auto cfg = corvo::config::from_string(R"({
    "kafka": {
      "bootstrap.servers": "embedded:1",
      "corvo.embedded.topics": ["tasks:3", "tasks.dlq"],
      "producer": { "linger.ms": 1 },
      "consumer": { "group.id": "workers", "session.timeout.ms": 6000,
                    "fetch.wait.max.ms": 10 } } })");
  const auto config = kafka::client_config::from(cfg);
  auto out = std::make_shared<received>();
  asio::io_context ctx;
  corvo::test::run(ctx, round_trip(config, out));
  BOOST_TEST(out->values.size() == 10U);

  // The same cluster stays up for the process: the topics were created with 3 partitions.
  const auto cluster = config.embedded();
  BOOST_TEST_REQUIRE(cluster != nullptr);
  BOOST_TEST(cluster == kafka::shared_embedded_cluster(1));
  BOOST_TEST(!cluster->ensure_topic("tasks", 3));  // already there
}

BOOST_AUTO_TEST_CASE(corvo_kafka_embedded_serves_other_processes_until_sigterm) {
  const auto program = corvo::test::corvo_program();
  BOOST_TEST_REQUIRE(std::filesystem::exists(program),
                     "build the corvo program first: " << program);
  corvo::test::temp_dir dir("corvo-kafka-embedded");
  const auto log = dir.path() / "corvo.log";
  corvo::test::child_process corvo({program.string(), "kafka", "embedded", "--brokers", "2",
                                    "--topic", "orders:4", "--topic", "orders.dlq"},
                                   dir.path(), log);
  // The first line of output is the bootstrap address.
  std::string servers;
  for (int i = 0; i < 200 && servers.empty(); ++i) {
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("127.0.0.1:", 0) == 0) {
        servers = line;
        break;
      }
    }
    if (servers.empty()) {
      std::this_thread::sleep_for(50ms);
    }
  }
  BOOST_TEST_REQUIRE(!servers.empty(), corvo::test::tail_of_file(log));
  BOOST_TEST(std::count(servers.begin(), servers.end(), ',') == 1);  // two brokers

  // kcat (another process) sees the brokers and the topics with their partitions.
  const auto metadata =
      corvo::test::run_command({"kcat", "-b", servers, "-L", "-t", "orders"}, 30s);
  BOOST_TEST_REQUIRE(metadata.exit_code == 0, metadata.err);
  BOOST_TEST(metadata.out.find("2 brokers") != std::string::npos, metadata.out);
  BOOST_TEST(metadata.out.find("topic \"orders\" with 4 partitions") != std::string::npos,
             metadata.out);
  const auto message_file = dir.path() / "message.txt";
  std::ofstream(message_file) << "hello";
  const auto produced = corvo::test::run_command(
      {"kcat", "-b", servers, "-P", "-t", "orders.dlq", "-p", "0", message_file.string()}, 30s);
  BOOST_TEST(produced.exit_code == 0, produced.err);
  const auto consumed = corvo::test::run_command(
      {"kcat", "-b", servers, "-C", "-t", "orders.dlq", "-o", "beginning", "-e", "-c", "1"}, 30s);
  BOOST_TEST(consumed.out == "hello\n", consumed.err);

  // SIGTERM stops it cleanly.
  const int status = corvo.terminate_and_wait(10s);
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0, corvo::test::tail_of_file(log));
}

BOOST_AUTO_TEST_SUITE_END()
