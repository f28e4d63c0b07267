// corvo and kcat (librdkafka's command-line client, a separate process) understand each
// other through the embedded cluster: kcat reads what corvo produced, corvo reads what kcat
// produced, keys, values and headers included.

#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/kafka/producer.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <support/child_process.hpp>
#include <support/run_coroutine.hpp>
#include <support/temp_dir.hpp>

#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
namespace kafka = corvo::kafka;

namespace {

asio::awaitable<void> produce_three(kafka::client_config config) {
  const auto executor = co_await asio::this_coro::executor;
  kafka::producer producer(executor, config);
  for (int i = 0; i < 3; ++i) {
    std::vector<kafka::header> headers(1, kafka::header{"source", std::string("corvo")});
    const std::string key = "k" + std::to_string(i);
    const std::string value = "value " + std::to_string(i);
    co_await producer.send("from-corvo", key, value, std::move(headers));
  }
  co_await producer.close();
}

struct received {
  std::vector<std::string> lines;  // "key=value source=<header>"
};

asio::awaitable<void> remember(std::shared_ptr<received> out, std::string line) {
  out->lines.push_back(std::move(line));
  co_return;
}

struct remember_message {
  std::shared_ptr<received> out;
  asio::awaitable<void> operator()(const kafka::message& m) const {
    return remember(out, std::string(m.key().value_or("<null>")) + "=" + std::string(m.value()) +
                             " source=" + std::string(m.header("source").value_or("<none>")));
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

asio::awaitable<void> consume_three(kafka::client_config config, std::shared_ptr<received> out) {
  const auto executor = co_await asio::this_coro::executor;
  kafka::consumer_options options;
  options.topics = {"from-kcat"};
  options.dead_letter_topic = "";
  kafka::consumer consumer(executor, config, std::move(options));
  auto outcome = std::make_shared<run_outcome>();
  asio::co_spawn(executor, consumer.run(remember_message{out}), record_outcome{outcome});
  const std::function<bool()> three = [out] { return out->lines.size() >= 3; };
  const bool got_three = co_await wait_for(three, std::chrono::seconds{60});
  BOOST_TEST(got_three);
  consumer.stop();
  const std::function<bool()> finished = [outcome] { return outcome->done; };
  const bool stopped = co_await wait_for(finished, std::chrono::seconds{30});
  BOOST_TEST_REQUIRE(stopped);
  if (outcome->failure) {
    std::rethrow_exception(outcome->failure);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_kcat_interop)

BOOST_AUTO_TEST_CASE(kcat_reads_what_corvo_produced) {
  kafka::embedded_cluster cluster{1};
  cluster.create_topic("from-corvo", 1, 1);
  asio::io_context ctx;
  corvo::test::run(ctx, produce_three(kafka::client_config(cluster.bootstrap_servers())));

  const auto result =
      corvo::test::run_command({"kcat", "-b", cluster.bootstrap_servers(), "-C", "-t", "from-corvo",
                                "-o", "beginning", "-e", "-c", "3", "-f", "%k=%s %h\\n"},
                               30s);
  BOOST_TEST_REQUIRE(!result.timed_out);
  BOOST_TEST_REQUIRE(result.exit_code == 0, result.err);
  BOOST_TEST(result.out ==
             "k0=value 0 source=corvo\nk1=value 1 source=corvo\nk2=value 2 source=corvo\n");
}

BOOST_AUTO_TEST_CASE(corvo_reads_what_kcat_produced) {
  kafka::embedded_cluster cluster{1};
  cluster.create_topic("from-kcat", 1, 1);
  corvo::test::temp_dir dir("kcat-interop");
  const auto input = dir.path() / "messages.txt";
  std::ofstream(input) << "a:first\nb:second\nc:third\n";
  const auto result =
      corvo::test::run_command({"kcat", "-b", cluster.bootstrap_servers(), "-P", "-t", "from-kcat",
                                "-K", ":", "-H", "source=kcat", "-l", input.string()},
                               30s);
  BOOST_TEST_REQUIRE(!result.timed_out);
  BOOST_TEST_REQUIRE(result.exit_code == 0, result.err);

  kafka::client_config config(cluster.bootstrap_servers());
  config.set(kafka::client_role::consumer, "group.id", "interop");
  config.set(kafka::client_role::consumer, "session.timeout.ms", "6000");
  config.set(kafka::client_role::consumer, "fetch.wait.max.ms", "10");
  auto out = std::make_shared<received>();
  asio::io_context ctx;
  corvo::test::run(ctx, consume_three(config, out));
  BOOST_TEST((out->lines == std::vector<std::string>{"a=first source=kcat", "b=second source=kcat",
                                                     "c=third source=kcat"}));
}

BOOST_AUTO_TEST_SUITE_END()
