// One consumer process for kafka_consumer_pipelined_crash_test: a kafka::consumer in group
// --group reading --topic from --brokers with `max_in_flight_per_partition` = --window. Its
// handler journals the start and the end of every message, sleeps --hold-ms while it "runs"
// (so the handlers of a partition overlap), and never ends on the message whose value is
// --hang-on (so the test can kill -9 the process while it is in flight). Offsets are
// auto-committed every 50 ms (what the test waits for before the kill).
//
// Journal (--journal PATH, one write(2) per line on an O_APPEND descriptor, so a line written
// before a SIGKILL is kept):   S <pid> <partition> <offset> <value>   (handler started)
//                              F <pid> <partition> <offset> <value>   (handler finished)
// Standard output: `assigned <pid>` when the group gave this process partitions; after a
// graceful stop `max_running <n>`, the most handlers of one partition that ran at once.
// Exit code: 0 after a graceful stop (SIGTERM), 1 on failure, 2 on bad arguments.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/kafka/consumer.hpp>
#include <iostream>
#include <map>
#include <string>
#include <system_error>

namespace asio = boost::asio;
namespace kafka = corvo::kafka;
namespace po = boost::program_options;
using namespace std::chrono_literals;

namespace {

struct settings {
  std::string brokers, topic, group, journal_path, hang_on;
  std::size_t window = 16;
  int hold_ms = 10;
};

struct world {
  int fd = -1;
  std::string hang_on;
  std::chrono::milliseconds hold{10};
  std::map<std::int32_t, std::size_t> running;  // per partition
  std::size_t max_running = 0;
};

void journal(const world& w, char event, const kafka::message& m) {
  const std::string line = std::string(1, event) + " " + std::to_string(::getpid()) + " " +
                           std::to_string(m.partition()) + " " + std::to_string(m.offset()) + " " +
                           std::string(m.value()) + "\n";
  if (::write(w.fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    throw std::system_error(errno, std::generic_category(), "journal write failed");
  }
}

asio::awaitable<void> handle(world* w, const kafka::message* m) {
  journal(*w, 'S', *m);
  auto& running = w->running[m->partition()];
  ++running;
  w->max_running = std::max(w->max_running, running);
  try {
    co_await corvo::sleep_for(m->value() == w->hang_on ? std::chrono::milliseconds(24h) : w->hold);
  } catch (...) {
    --running;
    throw;
  }
  --running;
  journal(*w, 'F', *m);
}

struct journaling_handler {
  world* w;
  asio::awaitable<void> operator()(const kafka::message& m) const { return handle(w, &m); }
};

asio::awaitable<void> work(settings s) {
  world w;
  w.fd = ::open(s.journal_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (w.fd < 0) {
    throw std::system_error(errno, std::generic_category(), "cannot open " + s.journal_path);
  }
  w.hang_on = s.hang_on;
  w.hold = std::chrono::milliseconds(s.hold_ms);
  kafka::client_config config(s.brokers);
  config.set(kafka::client_role::consumer, "group.id", s.group);
  config.set(kafka::client_role::consumer, "fetch.wait.max.ms", "5");
  config.set(kafka::client_role::consumer, "session.timeout.ms", "3000");
  config.set(kafka::client_role::consumer, "heartbeat.interval.ms", "300");
  config.set(kafka::client_role::consumer, "auto.commit.interval.ms", "50");
  kafka::consumer_options options;
  options.topics = {s.topic};
  options.max_in_flight_per_partition = s.window;
  options.dead_letter_topic = "";
  options.shutdown_timeout = 200ms;
  options.on_assigned = [](const std::vector<kafka::topic_partition>& p) {
    if (!p.empty()) {
      std::cout << "assigned " << ::getpid() << std::endl;
    }
  };
  const auto ex = co_await asio::this_coro::executor;
  kafka::consumer consumer(ex, config, options);
  std::exception_ptr failure;
  try {
    co_await consumer.run(journaling_handler{&w});
  } catch (...) {
    failure = std::current_exception();
  }
  ::close(w.fd);
  std::cout << "max_running " << w.max_running << std::endl;
  if (failure) {
    std::rethrow_exception(failure);
  }
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  po::options_description options("kafka_pipelined_consumer options");
  options.add_options()("brokers", po::value(&s.brokers)->required(), "bootstrap servers")(
      "topic", po::value(&s.topic)->required(), "topic")("group", po::value(&s.group)->required(),
                                                         "consumer group")(
      "journal", po::value(&s.journal_path)->required(), "file the handler appends to")(
      "window", po::value(&s.window)->default_value(16), "max_in_flight_per_partition")(
      "hold-ms", po::value(&s.hold_ms)->default_value(10), "how long a handler runs")(
      "hang-on", po::value(&s.hang_on)->default_value(""), "value whose handler never ends");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "kafka_pipelined_consumer: " << e.what() << "\n" << options << "\n";
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
      std::cerr << "kafka_pipelined_consumer failed: " << e.what() << std::endl;
    }
  }
  return corvo::exit_code(result);
}
