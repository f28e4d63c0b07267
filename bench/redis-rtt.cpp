// Single-request round trip: one caller, no pipelining, corvo vs `redis-benchmark -c 1`.
//
//   scripts/bench redis-rtt [--requests 100000] [--rounds 5] [--warmup 1]
//
// Both sides send GET of the same key, one request at a time, on one connection. corvo
// measures each exec() (queue, write, read, frame, complete the awaiting coroutine);
// redis-benchmark reports its own percentiles. After `--warmup` discarded runs of each side,
// `--rounds` rounds alternate the sides (support/report.hpp run_interleaved); each side's
// line holds its median round, and the ratio lines the median of the per-round ratios with
// their smallest and largest (`ratio_min`, `ratio_max`).

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/redis/connection.hpp>
#include <iostream>

#include "support/redis_server.hpp"
#include "support/report.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace po = boost::program_options;

namespace {

asio::awaitable<void> measure(redis::connection& conn, std::size_t requests,
                              std::vector<std::int64_t>& nanos) {
  while (!conn.is_connected()) {
    co_await corvo::sleep_for(std::chrono::milliseconds(1));
  }
  redis::request req;
  req.push("GET", "key:__rand_int__");
  redis::response<std::optional<std::string>> resp;
  for (std::size_t i = 0; i < 1000; ++i) {  // warm-up
    co_await conn.exec(req, resp);
  }
  nanos.reserve(requests);
  for (std::size_t i = 0; i < requests; ++i) {
    const auto start = std::chrono::steady_clock::now();
    co_await conn.exec(req, resp);
    nanos.push_back((std::chrono::steady_clock::now() - start).count());
  }
}

corvo::bench::metrics run_corvo(const std::string& url, std::size_t requests) {
  asio::io_context ctx(1);
  redis::connection conn(ctx.get_executor(), redis::config::from_url(url));
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  std::vector<std::int64_t> nanos;
  asio::co_spawn(ctx, measure(conn, requests, nanos), [&](std::exception_ptr e) {
    conn.cancel();
    if (e)
      std::rethrow_exception(e);
  });
  ctx.run();
  const auto s = corvo::bench::summarize(nanos);
  return {{"p50_ms", s.p50_ms},
          {"p99_ms", s.p99_ms},
          {"max_ms", s.max_ms},
          {"avg_ms", s.avg_ms},
          {"per_s", 1000.0 / s.avg_ms}};
}

corvo::bench::metrics run_baseline(const corvo::test::redis_server& server, std::size_t requests) {
  const auto rows =
      corvo::bench::run_redis_benchmark({"-h", server.host(), "-p", std::to_string(server.port()),
                                         "-c", "1", "-n", std::to_string(requests), "-t", "get"});
  const auto& b = rows.at("GET");
  return {{"p50_ms", b.at("p50_latency_ms")},
          {"p99_ms", b.at("p99_latency_ms")},
          {"max_ms", b.at("max_latency_ms")},
          {"avg_ms", b.at("avg_latency_ms")},
          {"per_s", b.at("rps")}};
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t requests = 100'000;
  int rounds = 5, warmup = 1;
  po::options_description options("redis-rtt");
  options.add_options()("help", "this text")(
      "requests", po::value(&requests)->default_value(100'000), "requests to time per run")(
      "rounds", po::value(&rounds)->default_value(5), "interleaved rounds")(
      "warmup", po::value(&warmup)->default_value(1), "discarded runs of each side first");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }

  corvo::log::init({.min_severity = corvo::log::severity::warning});
  corvo::test::redis_server server;
  server.cli("SET", "key:__rand_int__", "xxx");
  const auto results = corvo::bench::run_interleaved(
      {{"redis-benchmark", [&] { return run_baseline(server, requests); }},
       {"corvo", [&] { return run_corvo(server.url(), requests); }}},
      warmup, rounds);

  const std::string name = "redis-rtt";
  for (const auto& impl : {"corvo", "redis-benchmark"}) {
    const auto& r = results.at(impl);
    corvo::bench::emit({{"bench", name},
                        {"impl", impl},
                        {"n", requests},
                        {"rounds", r.size()},
                        {"p50_ms", corvo::bench::median_of(r, "p50_ms")},
                        {"p99_ms", corvo::bench::median_of(r, "p99_ms")},
                        {"max_ms", corvo::bench::median_of(r, "max_ms")},
                        {"avg_ms", corvo::bench::median_of(r, "avg_ms")},
                        {"per_s", corvo::bench::median_of(r, "per_s")}});
  }
  for (const std::string metric : {"p50_ms", "p99_ms"}) {
    corvo::bench::emit_ratio(name, metric, results.at("corvo"), metric,
                             results.at("redis-benchmark"), metric);
  }
  return 0;
}
