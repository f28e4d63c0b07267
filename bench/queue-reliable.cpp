// Reliable queue throughput: items through BLMOVE/take → handler → LREM ack.
//
//   scripts/bench queue-reliable [--items 200000] [--consumers 4] [--batch 200]
//                                [--max-in-flight 400] [--body-size 64]
//
// Pushes `items` items onto a fresh redis-server's queue (not timed), then starts
// `consumers` reliable_queue consumers (each with its own dedicated connection for BLMOVE;
// all sharing one io_context thread and one client for the scripts, as one process would)
// with a handler that only counts, and times until every item has been acknowledged (removed
// from its processing list). Prints one JSON line: bench, impl "corvo", consumers, n, per_s,
// plus the batch and in-flight bounds, the run's seconds and the CPU seconds the server and
// this process used during it, and items per CPU-second of both together (less noisy than
// per_s on a loaded machine: with two idle cores, per_s is at least about that figure).
//
// What bounds it: each item costs the server one LREM (inside the ack script) and its share
// of one take script (RPOP count + LPUSH); LREM scans the processing list from the tail, so
// the list is kept short (at most max_in_flight items taken and not yet acked per consumer)
// and acks are sent in batches as handlers finish, oldest first.

#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/queue/reliable_queue.hpp>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "support/redis_server.hpp"
#include "support/report.hpp"

namespace asio = boost::asio;
namespace po = boost::program_options;
namespace redis = corvo::redis;
namespace queue = corvo::queue;

namespace {

asio::awaitable<void> count_item(std::size_t* handled) {
  ++*handled;
  co_return;
}

struct counting_handler {
  std::size_t* handled;
  asio::awaitable<void> operator()(const queue::item&) const { return count_item(handled); }
};

asio::awaitable<void> push_batch(queue::producer& p, std::vector<std::string> bodies) {
  co_await p.push_raw_batch(std::move(bodies));
}

asio::awaitable<void> fill(redis::client& client, std::size_t items, std::size_t body_size) {
  queue::producer jobs(client, "bench");
  corvo::task_group group(co_await asio::this_coro::executor, {.max_in_flight = 8});
  for (std::size_t done = 0; done < items;) {
    std::vector<std::string> bodies;
    for (std::size_t i = 0; i < 1000 && done < items; ++i, ++done) {
      bodies.push_back(std::string(body_size, 'x'));
    }
    co_await group.spawn(push_batch(jobs, std::move(bodies)));
  }
  co_await group.join();
}

struct consumers_state {
  std::vector<std::unique_ptr<queue::reliable_queue>> queues;
  std::vector<std::unique_ptr<asio::cancellation_signal>> stops;
  std::size_t running = 0;
};

asio::awaitable<void> measure(redis::client& client, consumers_state& state, std::size_t items,
                              std::size_t body_size, double& seconds, pid_t server,
                              double& server_cpu, double& client_cpu) {
  auto ex = co_await asio::this_coro::executor;
  co_await fill(client, items, body_size);  // not timed
  server_cpu = -corvo::bench::process_cpu_seconds(server);
  client_cpu = -corvo::bench::process_cpu_seconds(::getpid());
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < state.queues.size(); ++i) {
    ++state.running;
    asio::co_spawn(ex, state.queues[i]->run(),
                   asio::bind_cancellation_slot(state.stops[i]->slot(),
                                                [&state](std::exception_ptr) { --state.running; }));
  }
  for (;;) {
    std::uint64_t acked = 0;
    for (const auto& q : state.queues) {
      acked += q->stats().succeeded;
    }
    if (acked >= items) {
      break;
    }
    co_await corvo::sleep_for(std::chrono::milliseconds(1));
  }
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  server_cpu += corvo::bench::process_cpu_seconds(server);
  client_cpu += corvo::bench::process_cpu_seconds(::getpid());
  for (auto& s : state.stops) {
    s->emit(asio::cancellation_type::terminal);
  }
  while (state.running > 0) {
    co_await corvo::sleep_for(std::chrono::milliseconds(5));
  }
  client.cancel();
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t items = 200'000, consumers = 4, batch = 200, max_in_flight = 400, body_size = 64;
  po::options_description options("queue-reliable");
  options.add_options()("help", "this text")("items", po::value(&items)->default_value(200'000),
                                             "items to push and consume")(
      "consumers", po::value(&consumers)->default_value(4), "reliable_queue consumers")(
      "batch", po::value(&batch)->default_value(200), "most items taken at once")(
      "max-in-flight", po::value(&max_in_flight)->default_value(400), "handlers per consumer")(
      "body-size", po::value(&body_size)->default_value(64), "bytes per item body");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  corvo::log::init({.min_severity = corvo::log::severity::warning});
  corvo::test::redis_server server;
  asio::io_context ctx(1);
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  std::size_t handled = 0;
  consumers_state state;
  for (std::size_t i = 0; i < consumers; ++i) {
    queue::queue_options o;
    o.name = "bench";
    o.consumer = "bench-" + std::to_string(i);
    o.batch = batch;
    o.max_in_flight = max_in_flight;
    o.block_timeout = std::chrono::milliseconds(100);
    state.queues.push_back(
        std::make_unique<queue::reliable_queue>(client, o, counting_handler{&handled}));
    state.stops.push_back(std::make_unique<asio::cancellation_signal>());
  }
  double seconds = 0, server_cpu = 0, client_cpu = 0;
  asio::co_spawn(
      ctx, measure(client, state, items, body_size, seconds, server.pid(), server_cpu, client_cpu),
      [](std::exception_ptr e) {
        if (e)
          std::rethrow_exception(e);
      });
  ctx.run();
  corvo::bench::emit({{"bench", "queue-reliable"},
                      {"impl", "corvo"},
                      {"consumers", consumers},
                      {"n", items},
                      {"per_s", static_cast<double>(items) / seconds},
                      {"seconds", seconds},
                      {"batch", batch},
                      {"max_in_flight", max_in_flight},
                      {"handled", handled},
                      {"server_cpu_s", server_cpu},
                      {"client_cpu_s", client_cpu},
                      {"items_per_cpu_s", static_cast<double>(items) / (server_cpu + client_cpu)}});
  return 0;
}
