// Pipelined SET/GET throughput: corvo vs redis-benchmark on the same redis-server, same run.
//
//   scripts/bench redis-pipeline [--clients 50] [--pipeline 16] [--requests 1000000]
//                                [--rounds 5] [--warmup 1]
//
// Both sides: `clients` concurrent callers, each sending `pipeline` commands at a time and
// waiting for their replies, `requests` commands per test, the same key and a 3-byte value
// (redis-benchmark's defaults). Replies are framed and counted, not decoded, on both sides.
// corvo runs twice: with one connection per caller, as redis-benchmark does (the like-for-
// like comparison), and with all callers sharing one connection, which coalesces their
// requests into large writes (automatic pipelining; how corvo is meant to be used).
// After `--warmup` discarded runs of each side, `--rounds` rounds alternate the three sides
// (support/report.hpp run_interleaved); each line holds a side's median round, and each
// ratio line the median of the per-round ratios with the smallest and largest.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/connection.hpp>
#include <iostream>
#include <memory>

#include "support/redis_server.hpp"
#include "support/report.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace po = boost::program_options;

namespace {

asio::awaitable<void> caller(redis::connection& conn, const redis::request& req,
                             std::size_t batches) {
  for (std::size_t i = 0; i < batches; ++i) {
    co_await conn.exec(req, redis::ignore);
  }
}

asio::awaitable<void> drive(std::vector<std::unique_ptr<redis::connection>>& conns,
                            std::string command, int clients, int pipeline, std::size_t requests,
                            double& seconds) {
  for (auto& conn : conns) {
    while (!conn->is_connected()) {
      co_await corvo::sleep_for(std::chrono::milliseconds(1));
    }
  }
  redis::request req;
  for (int i = 0; i < pipeline; ++i) {
    if (command == "SET") {
      req.push("SET", "key:__rand_int__", "xxx");
    } else {
      req.push("GET", "key:__rand_int__");
    }
  }
  const std::size_t batches_total = requests / static_cast<std::size_t>(pipeline);
  corvo::task_group group(co_await asio::this_coro::executor);
  const auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < clients; ++c) {
    const std::size_t share =
        batches_total / clients + (static_cast<std::size_t>(c) < batches_total % clients ? 1 : 0);
    co_await group.spawn(caller(*conns[static_cast<std::size_t>(c) % conns.size()], req, share));
  }
  co_await group.join();
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One run of corvo: SET then GET, over `connection_count` connections.
corvo::bench::metrics run_corvo(const std::string& url, int connection_count, int clients,
                                int pipeline, std::size_t requests) {
  corvo::bench::metrics out;
  for (const std::string command : {"SET", "GET"}) {
    asio::io_context ctx(1);
    std::vector<std::unique_ptr<redis::connection>> conns;
    for (int i = 0; i < connection_count; ++i) {
      conns.push_back(
          std::make_unique<redis::connection>(ctx.get_executor(), redis::config::from_url(url)));
      asio::co_spawn(ctx, conns.back()->run(), [](std::exception_ptr) {});
    }
    double seconds = 0;
    asio::co_spawn(ctx, drive(conns, command, clients, pipeline, requests, seconds),
                   [&](std::exception_ptr e) {
                     for (auto& conn : conns)
                       conn->cancel();
                     if (e)
                       std::rethrow_exception(e);
                   });
    ctx.run();
    std::uint64_t writes = 0;
    for (auto& conn : conns)
      writes += conn->stats().writes;
    out[command + " per_s"] = static_cast<double>(requests) / seconds;
    out[command + " writes"] = static_cast<double>(writes);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 50, pipeline = 16, rounds = 5, warmup = 1;
  std::size_t requests = 1'000'000;
  po::options_description options("redis-pipeline");
  options.add_options()("help", "this text")("clients", po::value(&clients)->default_value(50),
                                             "concurrent callers")(
      "pipeline", po::value(&pipeline)->default_value(16), "commands per request")(
      "requests", po::value(&requests)->default_value(1'000'000), "commands per test")(
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
  const auto baseline = [&] {
    const auto rows = corvo::bench::run_redis_benchmark(
        {"-h", server.host(), "-p", std::to_string(server.port()), "-c", std::to_string(clients),
         "-P", std::to_string(pipeline), "-n", std::to_string(requests), "-t", "set,get"});
    return corvo::bench::metrics{{"SET per_s", rows.at("SET").at("rps")},
                                 {"GET per_s", rows.at("GET").at("rps")}};
  };
  const auto results = corvo::bench::run_interleaved(
      {{"redis-benchmark", baseline},
       {"corvo", [&] { return run_corvo(server.url(), clients, clients, pipeline, requests); }},
       {"corvo-shared", [&] { return run_corvo(server.url(), 1, clients, pipeline, requests); }}},
      warmup, rounds);

  const std::string name = "redis-pipeline";
  const auto& base = results.at("redis-benchmark");
  for (const std::string command : {"SET", "GET"}) {
    const auto per_s = command + " per_s";
    corvo::bench::emit({{"bench", name},
                        {"impl", "redis-benchmark"},
                        {"command", command},
                        {"n", requests},
                        {"rounds", base.size()},
                        {"clients", clients},
                        {"connections", clients},
                        {"pipeline", pipeline},
                        {"per_s", corvo::bench::median_of(base, per_s)}});
    for (const auto& [impl, connection_count] :
         {std::pair<std::string, int>{"corvo", clients}, {"corvo-shared", 1}}) {
      const auto& r = results.at(impl);
      corvo::bench::emit({{"bench", name},
                          {"impl", "corvo"},
                          {"command", command},
                          {"n", requests},
                          {"rounds", r.size()},
                          {"clients", clients},
                          {"connections", connection_count},
                          {"pipeline", pipeline},
                          {"per_s", corvo::bench::median_of(r, per_s)},
                          {"writes", corvo::bench::median_of(r, command + " writes")}});
      corvo::bench::emit_ratio(name,
                               command + " per_s, " + std::to_string(connection_count) +
                                   " connection(s) vs redis-benchmark",
                               r, per_s, base, per_s);
    }
  }
  return 0;
}
