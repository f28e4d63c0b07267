// Lateness of the scheduler through the Kafka sink: handler start in the consumer group −
// due time, on the embedded Kafka (librdkafka's mock cluster) and a local redis-server.
//
//   scripts/bench schedule-kafka-lateness [--tasks 5000] [--spread-ms 2000]
//       [--max-in-flight 50] [--partitions 8] [--brokers 1] [--fetch-wait-ms 1]
//       [--linger-ms -1] [--provider redis|memory]
//
// Schedules `tasks` tasks due at random times over `spread-ms` (after the consumer group has
// its partitions), runs a dispatcher with the kafka_sink and a kafka_worker on the same
// io_context, and records for every task when the dispatcher handed it to the sink
// ("publish") and when the consumer's handler started ("handler"), both against its due
// time. Target (issue 6): handler p99 ≤ 10 ms.

#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/kafka_sink.hpp>
#include <corvo/schedule/kafka_worker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/program_options.hpp>

#include "support/report.hpp"
#include "support/schedule_setup.hpp"

#include <iostream>
#include <random>

namespace asio = boost::asio;
namespace po = boost::program_options;
namespace kafka = corvo::kafka;
using namespace corvo::schedule;
using namespace std::chrono_literals;

namespace {

struct settings {
  std::size_t tasks = 5000;
  int spread_ms = 2000;
  std::size_t max_in_flight = 50;
  int partitions = 8;
  int brokers = 1;
  int fetch_wait_ms = 1;
  int linger_ms = -1;  // -1: the sink's default
  std::string provider = "redis";
};

struct run_state {
  std::vector<std::int64_t> publish_ns;
  std::vector<std::int64_t> handler_ns;
  std::size_t handled = 0;
};

std::int64_t late_ns(time_point due) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(now() - due).count();
}

asio::awaitable<void> count_run(run_state& s) {
  ++s.handled;
  co_return;
}

struct counting_handler {
  run_state* s;
  asio::awaitable<void> operator()(const claimed_task&) const { return count_run(*s); }
};

asio::awaitable<void> stop(corvo::task_group& group) {
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

asio::awaitable<void> drive(store& tasks, dispatcher& d, kafka_sink& out, kafka_worker& worker,
                            run_state& s, const settings& o) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group consuming(ex);
  co_await consuming.spawn(worker.run());
  // The mock's first group join takes about 3 s: start the clock after it.
  const auto join_deadline = std::chrono::steady_clock::now() + 60s;
  while (worker.consumer().assignment().empty()) {
    if (std::chrono::steady_clock::now() > join_deadline) {
      throw std::runtime_error("the consumer group got no partitions within 60 s");
    }
    co_await corvo::sleep_for(20ms);
  }
  corvo::task_group dispatching(ex);
  co_await dispatching.spawn(d.run());

  std::mt19937_64 random(42);
  std::uniform_int_distribution<int> offset_us(0, o.spread_ms * 1000);
  const auto base = now() + 500ms;
  for (std::size_t i = 0; i < o.tasks; ++i) {
    task t;
    t.id = "task-" + std::to_string(i);
    t.type = "bench";
    t.due = base + std::chrono::microseconds(offset_us(random));
    co_await tasks.schedule(std::move(t));
  }
  if (now() > base) {
    std::cerr << "warning: scheduling took longer than the 500 ms head start\n";
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.spread_ms) + 60s;
  while (s.handled < o.tasks && std::chrono::steady_clock::now() < deadline) {
    co_await corvo::sleep_for(10ms);
  }
  if (s.handled < o.tasks) {
    std::cerr << "warning: only " << s.handled << " of " << o.tasks << " tasks were handled\n";
  }
  co_await stop(dispatching);
  co_await out.close(5s);
  co_await stop(consuming);
}

}  // namespace

int main(int argc, char** argv) {
  settings o;
  po::options_description options("schedule-kafka-lateness");
  options.add_options()("help", "this text")(
      "tasks", po::value(&o.tasks)->default_value(o.tasks), "tasks to schedule")(
      "spread-ms", po::value(&o.spread_ms)->default_value(o.spread_ms), "due times spread over")(
      "max-in-flight", po::value(&o.max_in_flight)->default_value(o.max_in_flight),
      "dispatcher parallelism")(
      "partitions", po::value(&o.partitions)->default_value(o.partitions), "topic partitions")(
      "brokers", po::value(&o.brokers)->default_value(o.brokers), "embedded Kafka brokers")(
      "fetch-wait-ms", po::value(&o.fetch_wait_ms)->default_value(o.fetch_wait_ms),
      "consumer fetch.wait.max.ms")(
      "linger-ms", po::value(&o.linger_ms)->default_value(o.linger_ms),
      "producer linger.ms (-1: the sink's default)")(
      "provider", po::value(&o.provider)->default_value(o.provider), "redis or memory");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  corvo::log::init({.min_severity = corvo::log::severity::error});

  kafka::embedded_cluster cluster(static_cast<std::size_t>(o.brokers));
  cluster.create_topic("bench.tasks", o.partitions);
  cluster.create_topic("bench.tasks.dlq", 1);
  kafka::client_config config(cluster.bootstrap_servers());
  config.set(kafka::client_role::consumer, "group.id", "bench");
  config.set(kafka::client_role::consumer, "fetch.wait.max.ms", std::to_string(o.fetch_wait_ms));
  config.set(kafka::client_role::consumer, "session.timeout.ms", "6000");
  config.set(kafka::client_role::consumer, "heartbeat.interval.ms", "500");
  if (o.linger_ms >= 0) {
    config.set(kafka::client_role::producer, "linger.ms", std::to_string(o.linger_ms));
  }

  asio::io_context ctx(1);
  auto setup = corvo::bench::schedule_setup::open(ctx, o.provider, {.name_space = "bench"});
  if (!setup) {
    return 2;
  }
  run_state state;
  state.publish_ns.reserve(o.tasks);
  state.handler_ns.reserve(o.tasks);
  handler_registry handlers;
  handlers.on_task("bench", counting_handler{&state});
  kafka_sink out(ctx.get_executor(), config, {.topic = "bench.tasks"});
  kafka_worker worker(ctx.get_executor(), config, handlers, {.topic = "bench.tasks"});
  worker.on_start([&state](const task_message& m) { state.handler_ns.push_back(late_ns(m.work.due)); });
  dispatcher d(setup->store(), out, {.max_in_flight = o.max_in_flight});
  d.on_start([&state](const claimed_task& t) { state.publish_ns.push_back(late_ns(t.work.due)); });
  asio::co_spawn(ctx, drive(setup->store(), d, out, worker, state, o), setup->on_done());
  ctx.run();

  const auto early = std::count_if(state.handler_ns.begin(), state.handler_ns.end(),
                                   [](std::int64_t v) { return v < 0; });
  for (auto* stage : {&state.publish_ns, &state.handler_ns}) {
    const auto s = corvo::bench::summarize(*stage);
    corvo::bench::emit({{"bench", "schedule-kafka-lateness"},
                        {"stage", stage == &state.publish_ns ? "publish" : "handler"},
                        {"provider", o.provider}, {"n", s.n}, {"p50_ms", s.p50_ms},
                        {"p99_ms", s.p99_ms}, {"max_ms", s.max_ms}, {"avg_ms", s.avg_ms},
                        {"max_in_flight", o.max_in_flight}, {"partitions", o.partitions},
                        {"fetch_wait_ms", o.fetch_wait_ms}, {"linger_ms", o.linger_ms},
                        {"early", early}});
  }
  return state.handled == o.tasks ? 0 : 1;
}
