// One scheduler dispatcher process for the multi-process tests: a redis_store on a
// standalone server (--redis URL) or a Redis Cluster (--cluster URL, repeated), a direct
// sink whose "record" handler journals every run, and a graceful stop on SIGTERM/SIGINT.
//
// Journal (--journal PATH, appended with one write(2) per line, so a line written before
// a SIGKILL is kept by the kernel):
//   S <pid> <task id> <occurrence µs> <now µs> <claimed µs> <type> <attempts>   a run started
//   F <pid> <task id> <occurrence µs> <now µs>   the handler finished it (the ack follows)
//   H <pid> <task id> <occurrence µs> <now µs>   the run is held (--hold-file) and never ends
// task::occurrence tells the occurrences of a recurring task apart (for a one-off task it is
// the due time it was scheduled for); `now` is the system clock when the line was written
// (for lateness). With --abort-task ID, the run of task ID calls std::abort() right after
// its S line. With --hold-file PATH, a run that starts while PATH exists never finishes (it
// waits until the process is stopped or killed), so a test can kill it with runs cut short.
// S lines also carry the store's time of the claim (claimed_task::claimed_at: the start a
// rate limit counts), the task type and its attempts (this try included). --type T
// (repeatable) adds task types the recording handler takes; --limit TYPE:RATE:CONCURRENCY
// (repeatable; "mail:20/1s:3", "mail::3", "mail:20/1s:") sets global limits
// (scheduler.types.<type>.rate / concurrency). With --count-running KEY each run of type T,
// before its delay, increments the Redis counter KEY:T and raises KEY:T:max to it when
// higher (one script), and decrements KEY:T after the delay: KEY:T:max is then the most
// runs of T in progress at once across every worker.
//
// Standard output: `ready <pid>` once the dispatcher is about to run, and on a graceful stop
// `stats claimed=… succeeded=… retried=… dead_lettered=… stale=… store_errors=… connects=…
// claims=…`
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
  std::vector<std::string> types;
  std::vector<std::string> limits;
  std::string count_running;
  dispatcher_options dispatch;
};

// "TYPE:RATE:CONCURRENCY" into options.types.
void add_limit(dispatcher_options& options, const std::string& text) {
  const auto a = text.find(':');
  const auto b = a == std::string::npos ? a : text.find(':', a + 1);
  if (b == std::string::npos || a == 0) {
    throw std::invalid_argument("--limit " + text + ": not TYPE:RATE:CONCURRENCY");
  }
  auto& policy = options.types[text.substr(0, a)];
  if (const auto rate = text.substr(a + 1, b - a - 1); !rate.empty()) {
    policy.rate = parse_rate(rate, "--limit");
  }
  if (const auto conc = text.substr(b + 1); !conc.empty()) {
    policy.concurrency = static_cast<std::uint32_t>(std::stoul(conc));
  }
}

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

  void write(char event, const task& t, std::string extra = {}) {
    const std::string line = std::string(1, event) + ' ' + std::to_string(pid_) + ' ' + t.id + ' ' +
                             std::to_string(t.occurrence.time_since_epoch().count()) + ' ' +
                             std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count()) +
                             extra + '\n';
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
  redis::client* commands;
  const std::string* count_running;  // empty: no counting
  asio::awaitable<void> operator()(const claimed_task& t) const;
};

// Runs in progress across every worker: KEYS[1] the count, KEYS[2] the most at once.
constexpr const char* count_up =
    "local n = redis.call('INCR', KEYS[1]) "
    "if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end "
    "return n";

asio::awaitable<void> count_runs(redis::client& commands, const std::string& key, bool up) {
  redis::request req;
  if (up) {
    req.push("EVAL", count_up, 2, key, key + ":max");
  } else {
    req.push("DECR", key);
  }
  redis::response<long long> resp;
  co_await commands.exec(req, resp);
  if (!std::get<0>(resp)) {
    throw std::runtime_error("--count-running: " + std::get<0>(resp).error().message);
  }
}

asio::awaitable<void> record_run(recorder r, const claimed_task& t) {
  journal& out = *r.out;
  const std::string extra = ' ' + std::to_string(t.claimed_at.time_since_epoch().count()) + ' ' +
                            t.work.type + ' ' + std::to_string(t.work.attempts);
  out.write('S', t.work, extra);
  if (t.work.id == *r.abort_task) {
    std::abort();  // a poison task: takes the whole process (and its other runs) down
  }
  if (!r.hold_file->empty() && ::access(r.hold_file->c_str(), F_OK) == 0) {
    out.write('H', t.work);
    co_await corvo::sleep_for(std::chrono::hours(24));  // held: ends only by cancellation
  }
  const auto delay = r.delay;
  const bool counting = !r.count_running->empty();
  const std::string counter = *r.count_running + ":" + t.work.type;
  if (counting) {
    co_await count_runs(*r.commands, counter, true);
  }
  if (delay.count() > 0) {
    co_await corvo::sleep_for(delay);
  }
  if (counting) {
    co_await count_runs(*r.commands, counter, false);
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
            << " connects=" << connects << " claims=" << s.claims << std::endl;
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
  const recorder record{&runs,        o.handler_delay, &o.abort_task,
                        &o.hold_file, &commands,       &o.count_running};
  handlers.on_task("record", record);
  for (const auto& type : o.types) {
    handlers.on_task(type, record);
  }

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
      ("type", po::value(&o.types)->composing(), "another task type to record (repeat)")
      ("limit", po::value(&o.limits)->composing(), "TYPE:RATE:CONCURRENCY (repeat)")
      ("count-running", po::value(&o.count_running), "Redis key counting runs in progress")
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
    for (const auto& limit : o.limits) {
      add_limit(o.dispatch, limit);
    }
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
