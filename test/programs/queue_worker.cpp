// One queue consumer process for the multi-process queue tests: a reliable_queue (or, with
// --mode work, a work_queue) on a standalone server (--redis URL) or a Redis Cluster
// (--cluster URL, repeated), whose handler journals every delivery, and a graceful stop on
// SIGTERM/SIGINT.
//
// Journal (--journal PATH, one write(2) per line on an O_APPEND descriptor, so a line written
// before a SIGKILL is kept):
//   S <pid> <item id> <body> <attempts>   the handler started a delivery
//   F <pid> <item id> <body> <attempts>   the handler finished it (the ack follows)
//   H <pid> <item id> <body> <attempts>   the handler is held (--hold-file) and never ends
// With --fail-body B the handler throws after the S line of an item whose body is B.
// With --hold-body B the handler of B waits until the process is killed or stopped.
// With --hold-file PATH, a delivery that starts while PATH exists writes its H line after
// the S line and then waits until the process is killed or stopped, so a test can kill the
// process while items are provably in its handlers.
//
// Redis client name: qw-<pid> (tests find the process's connections in CLIENT LIST).
// Standard output: `ready <pid>` when the consumer starts, and on a graceful stop
// `stats taken=… succeeded=… retried=… dead_lettered=… stale=… handed_back=… adopted=…`.
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
#include <corvo/queue/reliable_queue.hpp>
#include <corvo/queue/work_queue.hpp>
#include <corvo/redis/client.hpp>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

namespace asio = boost::asio;
namespace po = boost::program_options;
namespace redis = corvo::redis;
namespace queue = corvo::queue;

namespace {

struct worker_options {
  std::string redis_url;
  std::vector<std::string> cluster_seeds;
  std::string mode = "reliable";
  std::string journal_path;
  std::chrono::milliseconds handler_delay{0};
  std::string fail_body;
  std::string hold_body;
  std::string hold_file;
  queue::queue_options queue;
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

  void write(char event, const queue::item& it) {
    const std::string line = std::string(1, event) + ' ' + std::to_string(pid_) + ' ' +
                             (it.id.empty() ? "-" : it.id) + ' ' + it.body + ' ' +
                             std::to_string(it.attempts) + '\n';
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      throw std::system_error(errno, std::generic_category(), "journal write failed");
    }
  }

 private:
  int fd_;
  pid_t pid_ = ::getpid();
};

struct recorder {
  journal* out;
  const worker_options* o;
  asio::awaitable<void> operator()(const queue::item& it) const {
    out->write('S', it);
    if (it.body == o->fail_body) {
      throw std::runtime_error("boom: " + it.body + " always fails");
    }
    if (it.body == o->hold_body) {
      co_await corvo::sleep_for(std::chrono::hours(1));
    }
    if (!o->hold_file.empty() && ::access(o->hold_file.c_str(), F_OK) == 0) {
      out->write('H', it);
      co_await corvo::sleep_for(std::chrono::hours(24));  // held: ends only by cancellation
    }
    if (o->handler_delay.count() > 0) {
      co_await corvo::sleep_for(o->handler_delay);
    }
    out->write('F', it);
  }
};

asio::awaitable<void> run_client(redis::client& client) {
  co_await client.run();
}

void print_stats(const queue::queue_stats& s) {
  std::cout << "stats taken=" << s.taken << " succeeded=" << s.succeeded << " retried=" << s.retried
            << " dead_lettered=" << s.dead_lettered << " stale=" << s.stale
            << " handed_back=" << s.handed_back << " adopted=" << s.adopted << std::endl;
}

template <class Queue>
asio::awaitable<void> consume(Queue& q) {
  std::cout << "ready " << ::getpid() << std::endl;
  std::exception_ptr ended_by;
  try {
    co_await q.run();
  } catch (...) {
    ended_by = std::current_exception();
  }
  co_await asio::this_coro::reset_cancellation_state();
  print_stats(q.stats());
  std::rethrow_exception(ended_by);
}

asio::awaitable<void> work(worker_options o) {
  auto ex = co_await asio::this_coro::executor;
  auto config = o.cluster_seeds.empty() ? redis::client_config::from_url(o.redis_url)
                                        : redis::client_config::from_cluster_seeds(o.cluster_seeds);
  const auto name = "qw-" + std::to_string(::getpid());
  config.server.client_name = name;
  if (config.cluster) {
    config.cluster->node.client_name = name;
  }
  redis::client commands(ex, config);
  corvo::task_group background(ex);
  co_await background.spawn(run_client(commands));
  journal runs(o.journal_path);
  std::exception_ptr ended_by;
  try {
    if (o.mode == "work") {
      queue::work_queue q(commands, o.queue, recorder{&runs, &o});
      co_await consume(q);
    } else {
      queue::reliable_queue q(commands, o.queue, recorder{&runs, &o});
      co_await consume(q);
    }
  } catch (...) {
    ended_by = std::current_exception();
  }
  co_await asio::this_coro::reset_cancellation_state();
  commands.cancel();
  co_await background.join();
  std::rethrow_exception(ended_by);
}

}  // namespace

int main(int argc, char** argv) {
  worker_options o;
  long long delay_ms = 0, ttl_ms = 0, block_ms = 0, drain_ms = 0, reap_ms = 0;
  std::string log_level;
  po::options_description options("queue_worker options");
  // clang-format off
  options.add_options()
      ("help,h", "show this help")
      ("redis", po::value(&o.redis_url), "standalone Redis URL")
      ("cluster", po::value(&o.cluster_seeds)->composing(), "Redis Cluster seed URL (repeat)")
      ("queue", po::value(&o.queue.name)->default_value("jobs"), "queue name")
      ("mode", po::value(&o.mode)->default_value("reliable"), "reliable or work")
      ("consumer", po::value(&o.queue.consumer), "consumer id (default: generated)")
      ("journal", po::value(&o.journal_path)->required(), "file the handler appends to")
      ("handler-delay", po::value(&delay_ms)->default_value(0), "ms each item takes")
      ("max-in-flight", po::value(&o.queue.max_in_flight)->default_value(16), "parallel handlers")
      ("batch", po::value(&o.queue.batch)->default_value(16), "most items taken at once")
      ("max-attempts", po::value(&o.queue.max_attempts)->default_value(3), "deliveries before dead")
      ("heartbeat-ttl", po::value(&ttl_ms)->default_value(4000), "heartbeat TTL in ms")
      ("reap-interval", po::value(&reap_ms)->default_value(250), "reaper period in ms")
      ("block-timeout", po::value(&block_ms)->default_value(250), "blocking pop timeout in ms")
      ("drain-timeout", po::value(&drain_ms)->default_value(5000), "drain on stop, ms")
      ("fail-body", po::value(&o.fail_body), "a body whose handler always throws")
      ("hold-body", po::value(&o.hold_body), "a body whose handler never finishes")
      ("hold-file", po::value(&o.hold_file), "while this file exists, new deliveries never finish")
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
    if (o.mode != "work" && o.mode != "reliable") {
      throw std::invalid_argument("--mode is reliable or work");
    }
    const auto severity = corvo::log::parse_severity(log_level);
    if (!severity) {
      throw std::invalid_argument("unknown --log-level " + log_level);
    }
    corvo::log::options logging;
    logging.min_severity = *severity;
    corvo::log::init(logging);
    o.handler_delay = std::chrono::milliseconds(delay_ms);
    o.queue.heartbeat_ttl = std::chrono::milliseconds(ttl_ms);
    o.queue.reap_interval = std::chrono::milliseconds(reap_ms);
    o.queue.block_timeout = std::chrono::milliseconds(block_ms);
    o.queue.drain_timeout = std::chrono::milliseconds(drain_ms);
    o.queue.validate();
  } catch (const std::exception& e) {
    std::cerr << "queue_worker: " << e.what() << "\n" << options << "\n";
    return 2;
  }
  corvo::runtime rt({.shutdown_deadline = o.queue.drain_timeout + std::chrono::seconds(10)});
  const auto result = rt.run(work(std::move(o)));
  if (result == corvo::run_result::failed) {
    try {
      std::rethrow_exception(rt.failure());
    } catch (const std::exception& e) {
      std::cerr << "queue_worker failed: " << e.what() << std::endl;
    } catch (...) {
      std::cerr << "queue_worker failed" << std::endl;
    }
  }
  return corvo::exit_code(result);
}
