// Connection set-up and the memory a connection holds: N connections to one server started
// at once, each timed from its run() to the reply of its first PING (resolve, TCP connect,
// the HELLO 3 handshake, PING), and the heap the N connections hold while connected (glibc
// mallinfo2: bytes allocated with them, minus before them, divided by N). What a process
// holding hundreds of connections pays: a pub/sub subscriber per channel group, a cluster
// client's connections per node, a reliable-queue consumer's blocking connections.
//
//   scripts/bench redis-connect [--connections 200] [--rounds 5]
//
// One JSON line per round and one with the medians: `p50_ms`/`p99_ms`/`max_ms` of the
// connect-to-PING times, `per_s` (connections set up per second: N over the time until the
// last PING reply), `heap_bytes_per_connection`.

#include <malloc.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <corvo/core/log.hpp>
#include <corvo/redis/connection.hpp>
#include <iostream>
#include <memory>
#include <vector>

#include "support/redis_server.hpp"
#include "support/report.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace po = boost::program_options;
using clock_type = std::chrono::steady_clock;

namespace {

struct round_state {
  clock_type::time_point start;
  std::vector<std::int64_t> nanos;
  std::size_t waiting = 0;  // connections whose PING has not been answered
  std::vector<std::unique_ptr<redis::connection>>* connections = nullptr;
  std::size_t heap_with = 0;  // allocated bytes once every PING was answered
  clock_type::time_point last_reply;
};

std::size_t heap_in_use() {
  return mallinfo2().uordblks;
}

asio::awaitable<void> first_ping(redis::connection& conn, round_state& state) {
  redis::request req;
  req.push("PING");
  redis::response<std::string> resp;
  co_await conn.exec(req, resp);
  const auto now = clock_type::now();
  state.nanos.push_back((now - state.start).count());
  if (--state.waiting == 0) {
    state.last_reply = now;
    state.heap_with = heap_in_use();
    for (auto& c : *state.connections) {
      c->cancel();
    }
  }
}

corvo::bench::metrics run_round(const std::string& url, std::size_t n) {
  asio::io_context ctx(1);
  const auto config = redis::config::from_url(url);
  round_state state;
  state.nanos.reserve(n);
  state.waiting = n;
  const std::size_t heap_before = heap_in_use();
  std::vector<std::unique_ptr<redis::connection>> connections;
  connections.reserve(n);
  state.connections = &connections;
  state.start = clock_type::now();
  for (std::size_t i = 0; i < n; ++i) {
    connections.push_back(std::make_unique<redis::connection>(ctx.get_executor(), config));
    asio::co_spawn(ctx, connections.back()->run(), [](std::exception_ptr) {});
    asio::co_spawn(ctx, first_ping(*connections.back(), state), [](std::exception_ptr e) {
      if (e) {
        std::rethrow_exception(e);
      }
    });
  }
  ctx.run();
  if (state.waiting != 0) {
    throw std::runtime_error("redis-connect: not every connection answered its PING");
  }
  const auto total = std::chrono::duration<double>(state.last_reply - state.start).count();
  const auto s = corvo::bench::summarize(state.nanos);
  const double heap =
      state.heap_with > heap_before
          ? static_cast<double>(state.heap_with - heap_before) / static_cast<double>(n)
          : 0.0;
  return {{"p50_ms", s.p50_ms},
          {"p99_ms", s.p99_ms},
          {"max_ms", s.max_ms},
          {"per_s", static_cast<double>(n) / total},
          {"heap_bytes_per_connection", heap}};
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t connections = 200;
  int rounds = 5;
  po::options_description options("redis-connect");
  options.add_options()("help", "this text")(
      "connections", po::value(&connections)->default_value(200), "connections per round")(
      "rounds", po::value(&rounds)->default_value(5), "rounds (after one discarded warm-up)");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (connections == 0 || rounds < 1) {
    std::cerr << "redis-connect: need --connections > 0 and --rounds >= 1\n";
    return 2;
  }

  corvo::log::init({.min_severity = corvo::log::severity::warning});
  corvo::test::redis_server server;
  const auto results = corvo::bench::run_interleaved(
      {{"corvo", [&] { return run_round(server.url(), connections); }}}, 1, rounds);
  const auto& r = results.at("corvo");
  for (const auto& m : r) {
    corvo::bench::emit({{"bench", "redis-connect"},
                        {"impl", "corvo"},
                        {"round", true},
                        {"n", connections},
                        {"p50_ms", m.at("p50_ms")},
                        {"p99_ms", m.at("p99_ms")},
                        {"per_s", m.at("per_s")},
                        {"heap_bytes_per_connection", m.at("heap_bytes_per_connection")}});
  }
  corvo::bench::emit(
      {{"bench", "redis-connect"},
       {"impl", "corvo"},
       {"n", connections},
       {"rounds", r.size()},
       {"p50_ms", corvo::bench::median_of(r, "p50_ms")},
       {"p99_ms", corvo::bench::median_of(r, "p99_ms")},
       {"max_ms", corvo::bench::median_of(r, "max_ms")},
       {"per_s", corvo::bench::median_of(r, "per_s")},
       {"heap_bytes_per_connection", corvo::bench::median_of(r, "heap_bytes_per_connection")}});
  return 0;
}
