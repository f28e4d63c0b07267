// `corvo kafka embedded`: a standalone embedded Kafka (librdkafka's mock cluster) for other
// processes during development. Prints the bootstrap address on stdout (one line), then
// serves until SIGINT/SIGTERM.
//
//   $ corvo kafka embedded --brokers 3 --topic orders:8 --topic orders.dlq
//   127.0.0.1:40231,127.0.0.1:35419,127.0.0.1:46601
//   $ kcat -b 127.0.0.1:40231 -L

#include "command.hpp"

#include <corvo/core/log.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/kafka/embedded_cluster.hpp>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <charconv>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace corvo::tool {
namespace {

namespace asio = boost::asio;
namespace po = boost::program_options;

constexpr std::string_view kafka_usage =
    "usage: corvo kafka embedded [--brokers N] [--topic NAME[:PARTITIONS]]... "
    "[--replication R]\n\n"
    "Runs librdkafka's mock cluster (the embedded Kafka) until SIGINT/SIGTERM and prints its\n"
    "bootstrap address on stdout. Mock limits: no CreateTopics requests (create topics here;\n"
    "producers auto-create unknown topics with 4 partitions), partitions keep about 5 MiB.\n";

struct topic_spec {
  std::string name;
  int partitions = 1;
};

topic_spec parse_topic(const std::string& text) {
  topic_spec spec;
  const auto colon = text.find(':');
  spec.name = text.substr(0, colon);
  if (colon != std::string::npos) {
    const auto count = std::string_view(text).substr(colon + 1);
    const auto [end, ec] =
        std::from_chars(count.data(), count.data() + count.size(), spec.partitions);
    if (ec != std::errc{} || end != count.data() + count.size() || spec.partitions < 1) {
      throw std::invalid_argument("--topic " + text + ": partitions must be a number >= 1");
    }
  }
  if (spec.name.empty()) {
    throw std::invalid_argument("--topic " + text + ": empty topic name");
  }
  return spec;
}

// The root coroutine: nothing to do but wait for the stop request (cancellation).
asio::awaitable<void> serve_until_stopped() {
  const auto executor = co_await asio::this_coro::executor;
  asio::steady_timer forever(executor, asio::steady_timer::time_point::max());
  boost::system::error_code ec;
  co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

int run_embedded(const std::vector<std::string>& args) {
  std::size_t brokers = 3;
  int replication = 0;
  std::vector<std::string> topics;
  po::options_description options("options");
  options.add_options()("help,h", "show this help")(
      "brokers", po::value(&brokers)->default_value(3), "number of mock brokers (1..64)")(
      "topic", po::value(&topics)->composing(),
      "create a topic, NAME or NAME:PARTITIONS (repeatable)")(
      "replication", po::value(&replication)->default_value(0),
      "replication factor of the topics (default: min(brokers, 3))");
  po::variables_map values;
  po::store(po::command_line_parser(args).options(options).run(), values);
  if (values.count("help") != 0) {
    std::cout << kafka_usage << "\n" << options << std::endl;
    return 0;
  }
  po::notify(values);
  if (brokers < 1 || brokers > 64) {
    throw std::invalid_argument("--brokers must be in 1..64");
  }
  if (replication == 0) {
    replication = static_cast<int>(std::min<std::size_t>(brokers, 3));
  }
  std::vector<topic_spec> specs;
  for (const auto& t : topics) {
    specs.push_back(parse_topic(t));
  }

  kafka::embedded_cluster cluster(brokers);
  for (const auto& spec : specs) {
    cluster.create_topic(spec.name, spec.partitions, replication);
    CORVO_LOG(info, "kafka") << "created topic " << spec.name << " (" << spec.partitions
                             << " partitions, replication " << replication << ")";
  }
  // The address is the only thing on stdout, so scripts can read it: `$(corvo kafka ...)`
  // does not return, but `read -r servers < <(corvo kafka embedded)` does.
  std::cout << cluster.bootstrap_servers() << std::endl;
  CORVO_LOG(info, "kafka") << "embedded Kafka with " << brokers << " broker(s) at "
                           << cluster.bootstrap_servers() << "; stop with Ctrl-C";

  corvo::runtime runtime({.shutdown_deadline = std::chrono::seconds{5}});
  const auto result = runtime.run(serve_until_stopped());
  CORVO_LOG(info, "kafka") << "embedded Kafka stopping (" << corvo::to_string(result) << ")";
  return corvo::exit_code(result);
}

int run_kafka(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << kafka_usage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "embedded") {
    return run_embedded(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  std::cerr << "corvo kafka: unknown subcommand '" << args[0] << "'\n\n" << kafka_usage;
  return 2;
}

const registration kafka_command{
    {"kafka", "run an embedded Kafka cluster (kafka embedded)", run_kafka}};

}  // namespace
}  // namespace corvo::tool
