// One Kafka task worker process for the consumer-crash test: a schedule::kafka_worker in
// consumer group --group reading --topic from --brokers, whose "job" handler journals every
// run, and hangs forever on the task --hang-on (so the test can kill -9 the process while
// that run is in flight).
//
// Journal (--journal PATH, one write(2) per line on an O_APPEND descriptor, so a line
// written before a SIGKILL is kept):   S <pid> <task id>
// Standard output: `assigned <pid>` when the group gave this process partitions.
// Exit code: 0 after a graceful stop (SIGTERM), 1 on failure, 2 on bad arguments.

#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/schedule/kafka_worker.hpp>

#include <boost/program_options.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <string>
#include <system_error>

namespace asio = boost::asio;
namespace kafka = corvo::kafka;
namespace po = boost::program_options;
using namespace corvo::schedule;
using namespace std::chrono_literals;

namespace {

struct settings {
  std::string brokers, topic, group, journal_path, hang_on;
};

struct journal_line {
  int fd;
  void operator()(const std::string& id) const {
    const std::string line = "S " + std::to_string(::getpid()) + " " + id + "\n";
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      throw std::system_error(errno, std::generic_category(), "journal write failed");
    }
  }
};

asio::awaitable<void> work(settings s) {
  const int fd = ::open(s.journal_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(), "cannot open " + s.journal_path);
  }
  const journal_line journal{fd};
  handler_registry handlers;
  handlers.on_task("job", [journal, hang_on = s.hang_on](const claimed_task& t) -> asio::awaitable<void> {
    journal(t.work.id);
    if (t.work.id == hang_on) {
      co_await corvo::sleep_for(24h);
    }
  });
  kafka::client_config config(s.brokers);
  config.set(kafka::client_role::consumer, "group.id", s.group);
  config.set(kafka::client_role::consumer, "fetch.wait.max.ms", "5");
  config.set(kafka::client_role::consumer, "session.timeout.ms", "6000");
  config.set(kafka::client_role::consumer, "heartbeat.interval.ms", "300");
  kafka_worker_options options{.topic = s.topic};
  options.consumer.on_assigned = [](const std::vector<kafka::topic_partition>& p) {
    if (!p.empty()) std::cout << "assigned " << ::getpid() << std::endl;
  };
  options.consumer.shutdown_timeout = 200ms;
  const auto ex = co_await asio::this_coro::executor;
  kafka_worker worker(ex, config, handlers, options);
  try {
    co_await worker.run();
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  po::options_description options("kafka_task_worker options");
  options.add_options()("brokers", po::value(&s.brokers)->required(), "bootstrap servers")(
      "topic", po::value(&s.topic)->required(), "task topic")(
      "group", po::value(&s.group)->required(), "consumer group")(
      "journal", po::value(&s.journal_path)->required(), "file the handler appends to")(
      "hang-on", po::value(&s.hang_on)->default_value(""), "task id whose run never ends");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "kafka_task_worker: " << e.what() << "\n" << options << "\n";
    return 2;
  }
  corvo::log::options logging;
  logging.min_severity = corvo::log::severity::warning;
  corvo::log::init(logging);
  corvo::runtime rt;
  const auto result = rt.run(work(std::move(s)));
  if (result == corvo::run_result::failed) {
    try {
      std::rethrow_exception(rt.failure());
    } catch (const std::exception& e) {
      std::cerr << "kafka_task_worker failed: " << e.what() << std::endl;
    }
  }
  return corvo::exit_code(result);
}
