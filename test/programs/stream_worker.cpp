// One stream consumer process for the multi-process tests: a stream::consumer on a
// standalone server (--redis URL) or a Redis Cluster (--cluster URL, repeated) whose
// handler journals every run, and a graceful stop on SIGTERM/SIGINT.
//
// Journal (--journal PATH, appended with one write(2) per line, so a line written before a
// SIGKILL is kept by the kernel):
//   H <pid> <stream> <entry id> <deliveries>   the handler started on the entry
//
// Standard output: `ready <pid>` once the consumer is about to run, and on a graceful stop
// `stats read=… reclaimed=… handled=… acked=… dead_lettered=…`.
// Exit code: 0 after a graceful stop, 1 on failure, 2 on bad arguments.

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/this_coro.hpp>
#include <boost/program_options.hpp>
#include <cerrno>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/stream/consumer.hpp>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

namespace asio = boost::asio;
namespace po = boost::program_options;
namespace redis = corvo::redis;
namespace stream = corvo::stream;

namespace {

struct worker_options {
  std::string redis_url;
  std::vector<std::string> cluster_seeds;
  std::string journal_path;
  std::chrono::milliseconds handler_delay{0};
  stream::consumer_options consume;
};

class journal {
 public:
  explicit journal(const std::string& path)
      : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) {
    if (fd_ < 0) {
      throw std::system_error(errno, std::generic_category(), "cannot open journal " + path);
    }
  }
  ~journal() { ::close(fd_); }
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  void write(const stream::entry& e) {
    const std::string line = "H " + std::to_string(pid_) + ' ' + e.stream + ' ' + e.id + ' ' +
                             std::to_string(e.deliveries) + '\n';
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      throw std::system_error(errno, std::generic_category(), "journal write failed");
    }
  }

 private:
  int fd_;
  pid_t pid_ = ::getpid();
};

asio::awaitable<void> record(journal& out, std::chrono::milliseconds delay,
                             const stream::entry& e) {
  out.write(e);
  if (delay.count() > 0) {
    co_await corvo::sleep_for(delay);
  }
}

struct recorder {
  journal* out;
  std::chrono::milliseconds delay;
  asio::awaitable<void> operator()(const stream::entry& e) const { return record(*out, delay, e); }
};

asio::awaitable<void> run_client(redis::client& client) {
  co_await client.run();
}

asio::awaitable<void> work(worker_options o) {
  auto ex = co_await asio::this_coro::executor;
  auto config = o.cluster_seeds.empty() ? redis::client_config::from_url(o.redis_url)
                                        : redis::client_config::from_cluster_seeds(o.cluster_seeds);
  redis::client commands(ex, config);
  corvo::task_group background(ex);
  co_await background.spawn(run_client(commands));

  journal runs(o.journal_path);
  stream::consumer c(commands, o.consume);
  std::cout << "ready " << ::getpid() << std::endl;
  std::exception_ptr ended_by;
  try {
    recorder r{&runs, o.handler_delay};
    co_await c.run(r);  // until SIGTERM: drains, acks, then throws operation_aborted
  } catch (...) {
    ended_by = std::current_exception();
  }
  co_await asio::this_coro::reset_cancellation_state();
  const auto& s = c.stats();
  std::cout << "stats read=" << s.read << " reclaimed=" << s.reclaimed << " handled=" << s.handled
            << " acked=" << s.acked << " dead_lettered=" << s.dead_lettered << std::endl;
  commands.cancel();
  co_await background.join();
  if (ended_by) {
    std::rethrow_exception(ended_by);
  }
}

}  // namespace

int main(int argc, char** argv) {
  worker_options o;
  long long delay_ms = 0, min_idle_ms = 0, claim_ms = 0, drain_ms = 0, block_ms = 0;
  std::string log_level;
  auto& c = o.consume;
  po::options_description options("stream_worker options");
  // clang-format off
  options.add_options()
      ("help,h", "show this help")
      ("redis", po::value(&o.redis_url), "standalone Redis URL")
      ("cluster", po::value(&o.cluster_seeds)->composing(), "Redis Cluster seed URL (repeat)")
      ("stream", po::value(&c.streams)->composing()->required(), "stream key (repeat)")
      ("group", po::value(&c.group)->default_value("workers"), "consumer group")
      ("consumer", po::value(&c.consumer), "consumer name (default host-pid)")
      ("journal", po::value(&o.journal_path)->required(), "file the handler appends to")
      ("handler-delay", po::value(&delay_ms)->default_value(0), "ms each run takes")
      ("max-in-flight", po::value(&c.max_in_flight)->default_value(64), "parallel runs")
      ("batch", po::value(&c.batch)->default_value(128), "COUNT of a read")
      ("block", po::value(&block_ms)->default_value(500), "BLOCK of a read, ms")
      ("min-idle", po::value(&min_idle_ms)->default_value(30000), "XAUTOCLAIM min idle, ms")
      ("claim-interval", po::value(&claim_ms)->default_value(1000), "pending scan interval, ms")
      ("drain-timeout", po::value(&drain_ms)->default_value(5000), "drain on stop, ms")
      ("log-level", po::value(&log_level)->default_value("warning"), "corvo log level");
  // clang-format on
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, options), vm);
    if (vm.count("help") != 0) {
      std::cout << options << "\n";
      return 0;
    }
    po::notify(vm);
    if (o.redis_url.empty() == o.cluster_seeds.empty()) {
      throw std::invalid_argument("give either --redis or --cluster");
    }
    const auto severity = corvo::log::parse_severity(log_level);
    if (!severity) {
      throw std::invalid_argument("unknown --log-level " + log_level);
    }
    corvo::log::options logging;
    logging.min_severity = *severity;
    corvo::log::init(logging);
  } catch (const std::exception& e) {
    std::cerr << "stream_worker: " << e.what() << "\n" << options << "\n";
    return 2;
  }
  o.handler_delay = std::chrono::milliseconds(delay_ms);
  c.block = std::chrono::milliseconds(block_ms);
  c.min_idle = std::chrono::milliseconds(min_idle_ms);
  c.claim_interval = std::chrono::milliseconds(claim_ms);
  c.drain_timeout = std::chrono::milliseconds(drain_ms);
  c.redis_retry = {std::chrono::milliseconds(20), std::chrono::milliseconds(500)};

  corvo::runtime rt({.shutdown_deadline = c.drain_timeout + std::chrono::seconds(10)});
  const auto result = rt.run(work(std::move(o)));
  if (result == corvo::run_result::failed) {
    try {
      std::rethrow_exception(rt.failure());
    } catch (const std::exception& e) {
      std::cerr << "stream_worker failed: " << e.what() << std::endl;
    } catch (...) {
      std::cerr << "stream_worker failed" << std::endl;
    }
  }
  return corvo::exit_code(result);
}
