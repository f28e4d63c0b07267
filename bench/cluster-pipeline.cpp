// Pipelined SET/GET throughput through the cluster client (3 masters, 3 replicas) against
// the same load on one standalone redis-server through a plain connection, same run.
//
//   scripts/bench cluster-pipeline [--clients 50] [--pipeline 16] [--requests 500000]
//
// `clients` concurrent callers each send `pipeline` commands per request and wait for the
// replies; `requests` commands per test. A caller's keys share a hash tag, so each request
// has one slot (what a pipeline on a cluster must do); the callers' tags spread over all
// masters. Replies go to the `ignore` adapter on both sides. The standalone side uses one
// shared connection; the cluster side one shared connection per master. Lines (DESIGN §8):
//   {"bench":"cluster-pipeline","impl":"cluster"|"standalone","command":"SET"|"GET",...,"per_s":…}
//   {"bench":"cluster-pipeline","impl":"ratio","metric":"SET per_s, cluster vs
//   standalone","ratio":…}
// Everything (servers, client, this process) shares the machine's cores: the numbers say
// what the client costs per request more than what a real cluster would sustain.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/cluster/cluster_client.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <corvo/redis/connection.hpp>
#include <iostream>
#include <set>

#include "support/redis_cluster.hpp"
#include "support/redis_server.hpp"
#include "support/report.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace po = boost::program_options;

namespace {

struct load {
  std::string command;
  int clients = 50;
  int pipeline = 16;
  std::size_t requests = 500'000;
};

// One request per caller: `pipeline` commands on keys of the caller's own hash tag.
std::vector<redis::request> make_requests(const load& l) {
  std::vector<redis::request> out(static_cast<std::size_t>(l.clients));
  for (int c = 0; c < l.clients; ++c) {
    const std::string tag = "{caller:" + std::to_string(c) + "}";
    for (int i = 0; i < l.pipeline; ++i) {
      const std::string key = tag + ":key:" + std::to_string(i);
      if (l.command == "SET") {
        out[static_cast<std::size_t>(c)].push("SET", key, "xxx");
      } else {
        out[static_cast<std::size_t>(c)].push("GET", key);
      }
    }
  }
  return out;
}

template <class Client>
asio::awaitable<void> caller(Client& client, const redis::request& req, std::size_t batches) {
  for (std::size_t i = 0; i < batches; ++i) {
    co_await client.exec(req, redis::ignore);
  }
}

template <class Client>
asio::awaitable<void> drive(Client& client, const load& l, double& seconds) {
  const auto requests = make_requests(l);
  // Warm-up: one request per caller (connections up, topology known).
  for (const auto& req : requests) {
    co_await client.exec(req, redis::ignore);
  }
  const std::size_t batches_total = l.requests / static_cast<std::size_t>(l.pipeline);
  corvo::task_group group(co_await asio::this_coro::executor);
  const auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < l.clients; ++c) {
    const auto index = static_cast<std::size_t>(c);
    const std::size_t share = batches_total / static_cast<std::size_t>(l.clients) +
                              (index < batches_total % static_cast<std::size_t>(l.clients) ? 1 : 0);
    co_await group.spawn(caller(client, requests[index], share));
  }
  co_await group.join();
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

template <class Client, class Config>
double measure(const Config& cfg, const load& l) {
  asio::io_context ctx(1);
  Client client(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  double seconds = 0;
  asio::co_spawn(ctx, drive(client, l, seconds), [&](std::exception_ptr e) {
    client.cancel();
    if (e) {
      std::rethrow_exception(e);
    }
  });
  ctx.run();
  return static_cast<double>(l.requests) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  load l;
  po::options_description options("cluster-pipeline");
  options.add_options()("help", "this text")("clients", po::value(&l.clients)->default_value(50),
                                             "concurrent callers")(
      "pipeline", po::value(&l.pipeline)->default_value(16), "commands per request")(
      "requests", po::value(&l.requests)->default_value(500'000), "commands per test");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (l.clients <= 0 || l.pipeline <= 0) {
    std::cerr << "cluster-pipeline: --clients and --pipeline must be positive\n";
    return 2;
  }

  corvo::log::init({.min_severity = corvo::log::severity::warning});
  corvo::test::redis_server server;
  corvo::test::redis_cluster cluster;

  redis::cluster_options cluster_cfg;
  cluster_cfg.seeds = cluster.seed_urls();
  const auto standalone_cfg = redis::config::from_url(server.url());

  std::set<std::size_t> masters_used;
  for (int c = 0; c < l.clients; ++c) {
    masters_used.insert(
        cluster.node_for_slot(redis::key_slot("{caller:" + std::to_string(c) + "}")));
  }

  const std::string name = "cluster-pipeline";
  for (const std::string command : {"SET", "GET"}) {
    l.command = command;
    const double standalone = measure<redis::connection>(standalone_cfg, l);
    const double clustered = measure<redis::cluster_client>(cluster_cfg, l);
    const boost::json::object common{{"bench", name},
                                     {"command", command},
                                     {"n", l.requests},
                                     {"clients", l.clients},
                                     {"pipeline", l.pipeline}};
    auto line = common;
    line["impl"] = "standalone";
    line["nodes"] = 1;
    line["per_s"] = standalone;
    corvo::bench::emit(line);
    line = common;
    line["impl"] = "cluster";
    line["nodes"] = masters_used.size();
    line["per_s"] = clustered;
    corvo::bench::emit(line);
    corvo::bench::emit_ratio(name, command + " per_s, cluster vs standalone", clustered,
                             standalone);
  }
  return 0;
}
