// Stream consumer-group throughput, producer XADD throughput and Redis memory per entry.
//
//   scripts/bench stream-consume [--entries 200000] [--payload-bytes 100] [--batch 256]
//                                [--max-in-flight 512] [--producers 256]
//
// Into a fresh redis-server: `entries` entries with one `data` field of `payload-bytes`
// random characters are appended by `producers` concurrent producer::append_fields calls
// (the client pipelines them): one line with the XADD rate, one with used_memory per entry.
// Then one group consumes them with a no-op handler, acknowledging after handling, with 1
// consumer, and a second group with 4 consumers (one process, one io_context, a dedicated
// connection each): entries/s until the last ack. Target (issue 10): ≥ 300,000/s with one.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/stream/consumer.hpp>
#include <corvo/stream/producer.hpp>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

#include "support/redis_server.hpp"
#include "support/report.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace stream = corvo::stream;
namespace po = boost::program_options;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

struct bench_options {
  std::size_t entries = 200'000;
  std::size_t payload_bytes = 100;
  std::size_t batch = 256;
  std::size_t max_in_flight = 512;
  std::size_t producers = 256;
};

asio::awaitable<void> produce(stream::producer& out, std::size_t count, std::string payload) {
  std::vector<std::string> fields{"data", std::move(payload)};
  for (std::size_t i = 0; i < count; ++i) {
    co_await out.append_fields("bench:stream", fields);
  }
}

asio::awaitable<double> used_memory(redis::client& c) {
  redis::request req;
  req.push("INFO", "memory");
  redis::response<std::string> resp;
  co_await c.exec(req, resp);
  std::istringstream in(std::get<0>(resp).value());
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("used_memory:")) {
      co_return std::stod(line.substr(12));
    }
  }
  co_return 0.0;
}

// Where the server's time went during a run: calls and microseconds of the consumer's
// commands (INFO commandstats, reset before the run).
asio::awaitable<void> reset_server_stats(redis::client& c) {
  redis::request req;
  req.push("CONFIG", "RESETSTAT");
  redis::response<redis::ignore_t> resp;
  co_await c.exec(req, resp);
}

asio::awaitable<boost::json::object> server_stats(redis::client& c) {
  redis::request req;
  req.push("INFO", "commandstats");
  redis::response<std::string> resp;
  co_await c.exec(req, resp);
  std::istringstream in(std::get<0>(resp).value());
  boost::json::object out;
  std::string line;
  while (std::getline(in, line)) {
    for (const std::string command : {"xreadgroup", "xack", "xautoclaim"}) {
      const std::string prefix = "cmdstat_" + command + ":calls=";
      if (line.starts_with(prefix)) {
        const auto calls = std::stoull(line.substr(prefix.size()));
        const auto usec_at = line.find("usec=");
        out[command + "_calls"] = calls;
        out[command + "_server_ms"] = std::stod(line.substr(usec_at + 5)) / 1000.0;
      }
    }
  }
  co_return out;
}

asio::awaitable<void> consume(redis::client& c, const bench_options& o, std::size_t consumers,
                              const std::string& group) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<std::unique_ptr<stream::consumer>> group_members;
  for (std::size_t i = 0; i < consumers; ++i) {
    stream::consumer_options co;
    co.group = group;
    co.streams = {"bench:stream"};
    co.consumer = group + "-" + std::to_string(i);
    co.batch = o.batch;
    co.max_in_flight = o.max_in_flight;
    co.block = 100ms;
    co.drain_timeout = 2s;
    group_members.push_back(std::make_unique<stream::consumer>(c, co));
  }
  corvo::task_group running(ex);
  co_await reset_server_stats(c);
  const auto start = steady::now();
  for (auto& m : group_members) {
    stream::consumer::handler noop = [](const stream::entry&) -> asio::awaitable<void> {
      co_return;
    };
    co_await running.spawn(m->run(noop));
  }
  auto acked = [&] {
    std::uint64_t sum = 0;
    for (auto& m : group_members) {
      sum += m->stats().acked;
    }
    return sum;
  };
  while (acked() < o.entries) {
    co_await corvo::sleep_for(1ms);
  }
  const double seconds = std::chrono::duration<double>(steady::now() - start).count();
  running.cancel();
  try {
    co_await running.join();
  } catch (...) {
  }
  corvo::bench::emit({{"bench", "stream-consume"},
                      {"impl", "corvo"},
                      {"consumers", consumers},
                      {"n", o.entries},
                      {"batch", o.batch},
                      {"max_in_flight", o.max_in_flight},
                      {"seconds", seconds},
                      {"per_s", static_cast<double>(o.entries) / seconds}});
  boost::json::object server{{"bench", "stream-consume"},
                             {"impl", "redis-server"},
                             {"metric", "commandstats"},
                             {"consumers", consumers}};
  for (auto& [k, v] : co_await server_stats(c)) {
    server[k] = v;
  }
  corvo::bench::emit(server);
}

asio::awaitable<void> bench(redis::client& c, bench_options o) {
  std::mt19937_64 random(42);
  std::string payload(o.payload_bytes, 'x');
  for (auto& ch : payload) {
    ch = static_cast<char>('a' + random() % 26);
  }
  const double before = co_await used_memory(c);
  auto ex = co_await asio::this_coro::executor;
  stream::producer out(c);
  corvo::task_group producers(ex);
  const auto start = steady::now();
  const std::size_t each = o.entries / o.producers;
  for (std::size_t p = 0; p < o.producers; ++p) {
    const std::size_t count = p + 1 == o.producers ? o.entries - each * p : each;
    co_await producers.spawn(produce(out, count, payload));
  }
  co_await producers.join();
  const double seconds = std::chrono::duration<double>(steady::now() - start).count();
  corvo::bench::emit({{"bench", "stream-consume"},
                      {"impl", "corvo"},
                      {"metric", "xadd"},
                      {"producers", o.producers},
                      {"n", o.entries},
                      {"seconds", seconds},
                      {"per_s", static_cast<double>(o.entries) / seconds}});
  const double after = co_await used_memory(c);
  corvo::bench::emit({{"bench", "stream-consume"},
                      {"impl", "corvo"},
                      {"metric", "used_memory"},
                      {"n", o.entries},
                      {"payload_bytes", o.payload_bytes},
                      {"bytes_per_entry", (after - before) / static_cast<double>(o.entries)}});
  co_await consume(c, o, 1, "one");
  co_await consume(c, o, 4, "four");
}

}  // namespace

int main(int argc, char** argv) {
  bench_options o;
  po::options_description options("stream-consume options");
  // clang-format off
  options.add_options()
      ("help,h", "show this help")
      ("entries", po::value(&o.entries)->default_value(o.entries), "entries in the stream")
      ("payload-bytes", po::value(&o.payload_bytes)->default_value(o.payload_bytes), "field size")
      ("batch", po::value(&o.batch)->default_value(o.batch), "XREADGROUP COUNT")
      ("max-in-flight", po::value(&o.max_in_flight)->default_value(o.max_in_flight), "per consumer")
      ("producers", po::value(&o.producers)->default_value(o.producers), "concurrent appenders");
  // clang-format on
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  if (vm.count("help") != 0) {
    std::cout << options << "\n";
    return 0;
  }
  po::notify(vm);
  corvo::log::init({.min_severity = corvo::log::severity::warning});
  corvo::test::redis_server server;
  asio::io_context ctx(1);
  redis::client c(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, c.run(), [](std::exception_ptr) {});
  asio::co_spawn(ctx, bench(c, o), [&](std::exception_ptr e) {
    c.cancel();
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::cerr << "stream-consume failed: " << ex.what() << "\n";
      }
    }
  });
  ctx.run();
  return 0;
}
