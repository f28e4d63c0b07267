// A Kafka task worker process killed (SIGKILL) in the middle of a handler: after its group
// session expires, another process of the group runs that task again, and every task
// published to the topic is handled. Nothing is committed for the run that never finished.
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/schedule/scheduler.hpp>

#include <boost/test/unit_test.hpp>

#include "support/child_process.hpp"
#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/temp_dir.hpp"

#include <fstream>
#include <map>
#include <sstream>

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace kafka = corvo::kafka;
using namespace std::chrono_literals;
using namespace corvo::schedule;
using corvo::test::eventually;

namespace {

constexpr int job_count = 40;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Task id -> pids that started it, from the workers' shared journal.
std::map<std::string, std::vector<long>> runs_in(const std::filesystem::path& journal) {
  std::map<std::string, std::vector<long>> runs;
  std::istringstream lines(read_file(journal));
  std::string event, id;
  long pid = 0;
  while (lines >> event >> pid >> id) {
    runs[id].push_back(pid);
  }
  return runs;
}

struct crash_world {
  corvo::test::redis_server server;
  kafka::embedded_cluster cluster{1};
  corvo::test::temp_dir dir{"kafka-crash"};
  asio::io_context ctx;
  redis::client commands{ctx.get_executor(), redis::client_config::from_url(server.url())};

  crash_world() {
    cluster.create_topic("jobs", 1);
    cluster.create_topic("jobs.dlq", 1);
    asio::co_spawn(ctx, commands.run(), [](std::exception_ptr) {});
  }

  corvo::test::child_process start_worker(const std::string& name, const std::string& hang_on) {
    return corvo::test::child_process(
        {CORVO_KAFKA_TASK_WORKER_PATH, "--brokers", cluster.bootstrap_servers(), "--topic",
         "jobs", "--group", "crash-group", "--journal", (dir.path() / "runs.journal").string(),
         "--hang-on", hang_on},
        dir.path(), dir.path() / (name + ".log"));
  }
};

asio::awaitable<void> run_scheduler(scheduler& s) { co_await s.run(); }

// Polls `done` every 20 ms for up to `limit`; false on timeout.
asio::awaitable<void> crash_mid_handler(crash_world& w, scheduler& s) {
  const auto ex = co_await asio::this_coro::executor;
  corvo::task_group dispatching(ex);
  co_await dispatching.spawn(run_scheduler(s));
  const auto journal = w.dir.path() / "runs.journal";

  auto first = w.start_worker("first", "job-10");
  const auto due = now() + 300ms;
  for (int i = 0; i < job_count; ++i) {
    task t;
    t.id = "job-" + std::to_string(i);
    t.type = "job";
    t.payload = i;
    t.due = due + std::chrono::milliseconds(i);
    co_await s.schedule(std::move(t));
  }
  // One partition, in publication order: the first worker runs what comes before job-10,
  // then hangs in job-10.
  const bool hanging =
      co_await eventually([&] { return runs_in(journal).count("job-10") > 0; }, 60s);
  BOOST_TEST_REQUIRE(hanging, "the first worker never started job-10; its log:\n"
                                  << read_file(w.dir.path() / "first.log"));
  const auto first_pid = first.pid();
  first.kill(SIGKILL);
  first.wait();

  auto second = w.start_worker("second", "");
  const bool recovered = co_await eventually(
      [&] {
        const auto runs = runs_in(journal);
        if (runs.size() < std::size_t(job_count)) return false;
        const auto it = runs.find("job-10");
        return it != runs.end() && it->second.size() >= 2;
      },
      90s);
  const auto st = co_await s.stats();
  dispatching.cancel();
  try {
    co_await dispatching.join();
  } catch (const boost::system::system_error&) {
  }
  second.terminate_and_wait(20s);

  const auto runs = runs_in(journal);
  BOOST_TEST_REQUIRE(recovered, "after the kill only " << runs.size() << " of " << job_count
                                                       << " jobs ran; second worker's log:\n"
                                                       << read_file(w.dir.path() / "second.log"));
  const auto& stuck = runs.at("job-10");
  BOOST_TEST(stuck.front() == first_pid);
  BOOST_TEST(stuck.back() != first_pid, "job-10 was not run again by the surviving worker");
  // Publication order need not be id order (two shards, sends in parallel), so the killed
  // worker may have run other jobs before job-10; nothing of them was committed, so the
  // survivor may run them again. Every other job runs exactly once, on the survivor.
  for (int i = 0; i < job_count; ++i) {
    const auto id = "job-" + std::to_string(i);
    const auto& pids = runs.at(id);
    const bool first_ran_it = pids.front() == first_pid;
    if (first_ran_it) {
      BOOST_TEST(pids.size() <= 2u, id << " ran " << pids.size() << " times");
    } else {
      BOOST_TEST(pids.size() == 1u, id << " ran " << pids.size() << " times on the survivor");
    }
  }
  // Everything left Redis when Kafka had it; the crash only concerned the consumer side.
  BOOST_TEST(st.scheduled == 0u);
  BOOST_TEST(st.in_flight == 0u);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_killed_consumer_process_leaves_its_task_to_the_group) {
  crash_world w;
  scheduler_options o;
  o.provider = provider::redis;
  o.sink = sink_kind::kafka;
  o.redis = {.name_space = "crash", .shards = 2};
  o.kafka = kafka::client_config(w.cluster.bootstrap_servers());
  o.kafka_sink = {.topic = "jobs", .health_interval = 200ms};
  o.kafka_consume = false;  // the worker processes consume
  scheduler s(w.ctx.get_executor(), o, &w.commands, redis::client_config::from_url(w.server.url()));
  corvo::test::run(w.ctx, crash_mid_handler(w, s), [&] { w.commands.cancel(); });
}
