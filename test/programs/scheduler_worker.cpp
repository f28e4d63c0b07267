// One scheduler dispatcher process for the multi-process tests: a redis_store on a
// standalone server (--redis URL) or a Redis Cluster (--cluster URL, repeated), a direct
// sink whose "record" handler journals every run, and a graceful stop on SIGTERM/SIGINT.
//
// Journal (--journal PATH, appended with one write(2) per line, so a line written before
// a SIGKILL is kept by the kernel):
//   S <pid> <task id> <occurrence µs> <now µs>   the handler started a run
//   F <pid> <task id> <occurrence µs> <now µs>   the handler finished it (the ack follows)
//   H <pid> <task id> <occurrence µs> <now µs>   the run is held (--hold-file) and never ends
// task::occurrence tells the occurrences of a recurring task apart (for a one-off task it is
// the due time it was scheduled for); `now` is the system clock when the line was written
// (for lateness). With --abort-task ID, the run of task ID calls std::abort() right after
// its S line. With --hold-file PATH, a run that starts while PATH exists never finishes (it
// waits until the process is stopped or killed), so a test can kill it with runs cut short.
//
// Standard output: `ready <pid>` once the dispatcher is about to run, and on a graceful stop
// `stats claimed=… succeeded=… retried=… dead_lettered=… stale=… store_errors=… connects=…`
// (connects: successful connections of the standalone client, reconnections included; 0 on
// a cluster).
// Exit code: 0 after a graceful stop, 1 on failure, 2 on bad arguments.

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/program_options.hpp>
#include <cerrno>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/sink.hpp>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

namespace asio = boost::asio;
namespace po = boost::program_options;
namespace redis = corvo::redis;
using namespace corvo::schedule;

namespace {

struct worker_options {
  std::string redis_url;
  std::vector<std::string> cluster_seeds;
  std::string name_space = "mp";
  unsigned shards = 16;
  std::string journal_path;
  std::chrono::milliseconds handler_delay{0};
  std::string abort_task;
  std::string hold_file;
  std::chrono::milliseconds request_timeout{-1};  // < 0: the Redis client's default
  dispatcher_options dispatch;
};

// Appends lines to the journal file; each line is one write(2) on an O_APPEND descriptor.
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

  void write(char event, const task& t) {
    const std::string line = std::string(1, event) + ' ' + std::to_string(pid_) + ' ' + t.id + ' ' +
                             std::to_string(t.occurrence.time_since_epoch().count()) + ' ' +
                             std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count()) +
                             '\n';
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
  std::chrono::milliseconds delay;
  const std::string* abort_task;
  const std::string* hold_file;
  asio::awaitable<void> operator()(const claimed_task& t) const;
};

asio::awaitable<void> record_run(recorder r, const claimed_task& t) {
  journal& out = *r.out;
  out.write('S', t.work);
  if (t.work.id == *r.abort_task) {
    std::abort();  // a poison task: takes the whole process (and its other runs) down
  }
  if (!r.hold_file->empty() && ::access(r.hold_file->c_str(), F_OK) == 0) {
    out.write('H', t.work);
    co_await corvo::sleep_for(std::chrono::hours(24));  // held: ends only by cancellation
  }
  const auto delay = r.delay;
  if (delay.count() > 0) {
    co_await corvo::sleep_for(delay);
  }
  out.write('F', t.work);
}

asio::awaitable<void> recorder::operator()(const claimed_task& t) const {
  return record_run(*this, t);
}

asio::awaitable<void> run_client(redis::client& client) {
  co_await client.run();
}

void print_stats(const dispatcher_stats& s, redis::client& client) {
  const auto connects = client.standalone() ? client.standalone()->stats().connects : 0;
  std::cout << "stats claimed=" << s.claimed << " succeeded=" << s.succeeded
            << " retried=" << s.retried << " dead_lettered=" << s.dead_lettered
            << " stale=" << s.stale << " store_errors=" << s.store_errors
            << " connects=" << connects << std::endl;
}

asio::awaitable<void> work(worker_options o) {
  auto ex = co_await asio::this_coro::executor;
  auto config = o.cluster_seeds.empty() ? redis::client_config::from_url(o.redis_url)
                                        : redis::client_config::from_cluster_seeds(o.cluster_seeds);
  if (o.request_timeout.count() >= 0) {
    config.server.request_timeout = o.request_timeout;
    if (config.cluster) {
      config.cluster->node.request_timeout = o.request_timeout;
    }
  }
  redis::client commands(ex, config);
  corvo::task_group background(ex);
  co_await background.spawn(run_client(commands));

  journal runs(o.journal_path);
  handler_registry handlers;
  handlers.on_task("record", recorder{&runs, o.handler_delay, &o.abort_task, &o.hold_file});
  direct_sink sink(handlers);
  redis_store store(commands, config, {.name_space = o.name_space, .shards = o.shards});
  dispatcher dispatch(store, sink, o.dispatch);

  std::cout << "ready " << ::getpid() << std::endl;
  std::exception_ptr ended_by;
  try {
    co_await dispatch.run();  // until SIGTERM: drains, acks, then throws operation_aborted
  } catch (...) {
    ended_by = std::current_exception();
  }
  co_await asio::this_coro::reset_cancellation_state();
  print_stats(dispatch.stats(), commands);
  commands.cancel();
  co_await background.join();
  if (ended_by) {
    std::rethrow_exception(ended_by);
  }
}

}  // namespace

int main(int argc, char** argv) {
  worker_options o;
  long long delay_ms = 0, lease_ms = 0, max_sleep_ms = 0, drain_ms = 0, request_timeout_ms = -1;
  std::string log_level;
  po::options_description options("scheduler_worker options");
  // clang-format off
  options.add_options()
      ("help,h", "show this help")
      ("redis", po::value(&o.redis_url), "standalone Redis URL")
      ("cluster", po::value(&o.cluster_seeds)->composing(), "Redis Cluster seed URL (repeat)")
      ("namespace", po::value(&o.name_space)->default_value("mp"), "scheduler namespace")
      ("shards", po::value(&o.shards)->default_value(16), "shards of the namespace")
      ("journal", po::value(&o.journal_path)->required(), "file the record handler appends to")
      ("handler-delay", po::value(&delay_ms)->default_value(0), "ms each run takes")
      ("max-in-flight", po::value(&o.dispatch.max_in_flight)->default_value(32), "parallel runs")
      ("claim-batch", po::value(&o.dispatch.claim_batch)->default_value(64), "most tasks per claim")
      ("lease", po::value(&lease_ms)->default_value(2000), "lease in ms")
      ("max-sleep", po::value(&max_sleep_ms)->default_value(500), "longest sleep in ms")
      ("drain-timeout", po::value(&drain_ms)->default_value(5000), "drain on stop, ms")
      ("abort-task", po::value(&o.abort_task), "a task id whose run calls std::abort()")
      ("hold-file", po::value(&o.hold_file), "while this file exists, new runs never finish")
      ("request-timeout", po::value(&request_timeout_ms)->default_value(-1),
       "Redis reply deadline in ms (redis.request_timeout; -1: the default)")
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
    std::cerr << "scheduler_worker: " << e.what() << "\n" << options << "\n";
    return 2;
  }
  o.handler_delay = std::chrono::milliseconds(delay_ms);
  o.request_timeout = std::chrono::milliseconds(request_timeout_ms);
  o.dispatch.lease = std::chrono::milliseconds(lease_ms);
  o.dispatch.max_sleep = std::chrono::milliseconds(max_sleep_ms);
  o.dispatch.drain_timeout = std::chrono::milliseconds(drain_ms);
  o.dispatch.retry_backoff = {std::chrono::milliseconds(5), std::chrono::milliseconds(50)};

  corvo::runtime rt({.shutdown_deadline = o.dispatch.drain_timeout + std::chrono::seconds(10)});
  const auto result = rt.run(work(std::move(o)));
  if (result == corvo::run_result::failed) {
    try {
      std::rethrow_exception(rt.failure());
    } catch (const std::exception& e) {
      std::cerr << "scheduler_worker failed: " << e.what() << std::endl;
    } catch (...) {
      std::cerr << "scheduler_worker failed" << std::endl;
    }
  }
  return corvo::exit_code(result);
}
