// One process running the stream retention job on corvo's scheduler, for the multi-process
// test: a redis_store dispatcher on a standalone server (--redis URL) or a cluster
// (--cluster URL, repeated), a stream::retention_job registered on it (ensure_scheduled at
// start, as every process of an application does), and a graceful stop on SIGTERM.
//
// Journal (--journal PATH; the format of scheduler_worker, so run_journal reads it), one
// write(2) per line:
//   S <pid> <task id> <occurrence µs> <now µs>   a retention run started
//   F <pid> <task id> <occurrence µs> <now µs>   it finished (trimmed counts in the log)
// Standard output: `ready <pid>` once the task is scheduled and the dispatcher is about to
// run. Exit code: 0 after a graceful stop, 1 on failure, 2 on bad arguments.

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/this_coro.hpp>
#include <boost/program_options.hpp>
#include <cerrno>
#include <corvo/core/log.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/sink.hpp>
#include <corvo/stream/retention.hpp>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

namespace asio = boost::asio;
namespace po = boost::program_options;
namespace redis = corvo::redis;
namespace schedule = corvo::schedule;
namespace stream = corvo::stream;

namespace {

struct worker_options {
  std::string redis_url;
  std::vector<std::string> cluster_seeds;
  std::string name_space = "retention";
  unsigned shards = 4;
  std::string journal_path;
  stream::retention_options retention;
  schedule::dispatcher_options dispatch;
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

  void write(char event, const std::string& id, schedule::time_point occurrence) {
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const std::string line = std::string(1, event) + ' ' + std::to_string(::getpid()) + ' ' + id +
                             ' ' + std::to_string(occurrence.time_since_epoch().count()) + ' ' +
                             std::to_string(now) + '\n';
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      throw std::system_error(errno, std::generic_category(), "journal write failed");
    }
  }

 private:
  int fd_;
};

// The job's own handler, wrapped to journal the start and the end of each run.
struct journaled {
  schedule::handler_registry::handler_fn inner;
  journal* out;
  asio::awaitable<void> operator()(const schedule::claimed_task& t) const {
    return run(inner, out, t);
  }
  static asio::awaitable<void> run(schedule::handler_registry::handler_fn inner, journal* out,
                                   const schedule::claimed_task& t) {
    out->write('S', t.work.id, t.work.occurrence);
    co_await inner(t);
    out->write('F', t.work.id, t.work.occurrence);
  }
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
  stream::retention_job retention(commands, o.retention);
  schedule::handler_registry job_handlers;
  retention.register_handler(job_handlers);
  schedule::handler_registry handlers;
  handlers.on_task(std::string(stream::retention_job::task_type),
                   journaled{*job_handlers.find(stream::retention_job::task_type), &runs});
  schedule::direct_sink sink(handlers);
  schedule::redis_store store(commands, config, {.name_space = o.name_space, .shards = o.shards});
  co_await retention.ensure_scheduled(store);
  schedule::dispatcher dispatch(store, sink, o.dispatch);

  std::cout << "ready " << ::getpid() << std::endl;
  std::exception_ptr ended_by;
  try {
    co_await dispatch.run();  // until SIGTERM: drains, acks, then throws operation_aborted
  } catch (...) {
    ended_by = std::current_exception();
  }
  co_await asio::this_coro::reset_cancellation_state();
  commands.cancel();
  co_await background.join();
  if (ended_by) {
    std::rethrow_exception(ended_by);
  }
}

}  // namespace

int main(int argc, char** argv) {
  worker_options o;
  long long max_age_ms = 3'600'000, max_sleep_ms = 200;
  std::string log_level;
  po::options_description options("stream_retention_worker options");
  // clang-format off
  options.add_options()
      ("help,h", "show this help")
      ("redis", po::value(&o.redis_url), "standalone Redis URL")
      ("cluster", po::value(&o.cluster_seeds)->composing(), "Redis Cluster seed URL (repeat)")
      ("namespace", po::value(&o.name_space)->default_value("retention"), "scheduler namespace")
      ("shards", po::value(&o.shards)->default_value(4), "shards of the namespace")
      ("journal", po::value(&o.journal_path)->required(), "file the runs are journaled to")
      ("stream", po::value(&o.retention.streams)->composing()->required(), "stream to trim (repeat)")
      ("max-age", po::value(&max_age_ms)->default_value(3'600'000), "max age in ms")
      ("schedule", po::value(&o.retention.schedule)->default_value("every 300ms"), "recurrence")
      ("max-sleep", po::value(&max_sleep_ms)->default_value(200), "dispatcher's longest sleep, ms")
      ("log-level", po::value(&log_level)->default_value("info"), "corvo log level");
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
    std::cerr << "stream_retention_worker: " << e.what() << "\n" << options << "\n";
    return 2;
  }
  o.retention.max_age = std::chrono::milliseconds(max_age_ms);
  o.dispatch.max_sleep = std::chrono::milliseconds(max_sleep_ms);
  o.dispatch.lease = std::chrono::milliseconds(2000);
  o.dispatch.retry_backoff = {std::chrono::milliseconds(5), std::chrono::milliseconds(50)};

  corvo::runtime rt({.shutdown_deadline = std::chrono::seconds(15)});
  const auto result = rt.run(work(std::move(o)));
  if (result == corvo::run_result::failed) {
    try {
      std::rethrow_exception(rt.failure());
    } catch (const std::exception& e) {
      std::cerr << "stream_retention_worker failed: " << e.what() << std::endl;
    } catch (...) {
      std::cerr << "stream_retention_worker failed" << std::endl;
    }
  }
  return corvo::exit_code(result);
}
