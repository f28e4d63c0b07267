// Pub/sub fan-out: 1 publisher, N subscriber connections (pubsub::subscriber each), M
// messages of B bytes published at an even pace on one channel; the latency of every
// delivery from just before PUBLISH to the subscriber's receive() returning it.
//
//   scripts/bench pubsub-fanout [--subscribers 100] [--messages 10000] [--bytes 100]
//                               [--rate 1000] [--impl both|corvo|raw] [--rounds 1]
//
// Everything runs on one io_context thread, as an application would run it: the publisher's
// send time travels in the payload. per_s is deliveries (messages x subscribers) per
// second between the first publish and the last delivery.
//
// impl "raw" is the floor (support/raw_fanout.hpp): the same workload read by plain sockets
// and epoll with a minimal RESP2 scanner, i.e. what the server and the kernel cost here.
// With --impl both the two alternate for --rounds rounds against one server (the side that
// goes first rotates), one JSON line per run, then the median p50/p99 ratios corvo / raw.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/program_options.hpp>
#include <charconv>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/pubsub/publish.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <iostream>

#include "support/raw_fanout.hpp"
#include "support/redis_server.hpp"
#include "support/report.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace pubsub = corvo::pubsub;
namespace po = boost::program_options;
using clock_type = std::chrono::steady_clock;

namespace {

struct run_state {
  std::vector<std::int64_t> nanos;
  std::size_t expected = 0;
  std::uint64_t dropped = 0;
  clock_type::time_point first_publish{}, last_delivery{};
  std::vector<std::unique_ptr<pubsub::subscriber>>* subscribers = nullptr;
  redis::client* publisher = nullptr;
};

void stop_all(run_state& state) {
  for (auto& s : *state.subscribers)
    s->cancel();
  state.publisher->cancel();
}

asio::awaitable<void> collect(pubsub::subscriber& sub, run_state& state) {
  for (;;) {
    pubsub::message m = co_await sub.receive();
    const auto now = clock_type::now();
    std::int64_t sent = 0;
    std::from_chars(m.payload.data(), m.payload.data() + m.payload.size(), sent);
    state.nanos.push_back(now.time_since_epoch().count() - sent);
    state.last_delivery = now;
    if (state.nanos.size() == state.expected) {
      stop_all(state);
    }
  }
}

asio::awaitable<void> publish_paced(run_state& state, std::size_t messages, std::size_t bytes,
                                    double rate) {
  auto& subscribers = *state.subscribers;
  std::vector<std::string> channel{"fanout"};
  for (auto& sub : subscribers) {
    co_await sub->subscribe(channel);
  }
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer pace(ex);
  const auto interval =
      std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(1.0 / rate));
  const auto start = clock_type::now();
  state.first_publish = start;
  for (std::size_t i = 0; i < messages; ++i) {
    pace.expires_at(start + interval * static_cast<long>(i));
    co_await pace.async_wait(asio::use_awaitable);
    std::string payload = std::to_string(clock_type::now().time_since_epoch().count());
    payload.resize(std::max(bytes, payload.size() + 1), ' ');
    co_await pubsub::publish(*state.publisher, "fanout", std::move(payload));
  }
  // Whatever a subscriber dropped will never arrive: stop once the rest has.
  for (int i = 0; i < 1000 && state.nanos.size() < state.expected; ++i) {
    std::uint64_t dropped = 0;
    for (auto& sub : subscribers)
      dropped += sub->stats().dropped;
    state.dropped = dropped;
    if (state.nanos.size() + dropped >= state.expected)
      break;
    co_await corvo::sleep_for(std::chrono::milliseconds(10));
  }
  stop_all(state);
}

struct workload {
  std::size_t subscribers = 100, messages = 10'000, bytes = 100;
  double rate = 1000;
};

// cpu_s: this process's CPU time (user + system) over the whole run, connecting included;
// the server is another process and not counted.
corvo::bench::metrics report(const char* impl, const workload& w, std::vector<std::int64_t>& nanos,
                             clock_type::duration elapsed, std::uint64_t dropped, double cpu_s) {
  const std::size_t delivered = nanos.size();
  const double seconds = std::chrono::duration<double>(elapsed).count();
  const double per_s = seconds > 0 ? static_cast<double>(delivered) / seconds : 0.0;
  const std::size_t expected = w.subscribers * w.messages;
  const auto s = corvo::bench::summarize(nanos);
  corvo::bench::emit({{"bench", "pubsub-fanout"},
                      {"impl", impl},
                      {"n", delivered},
                      {"subscribers", w.subscribers},
                      {"messages", w.messages},
                      {"bytes", w.bytes},
                      {"rate", w.rate},
                      {"p50_ms", s.p50_ms},
                      {"p99_ms", s.p99_ms},
                      {"max_ms", s.max_ms},
                      {"per_s", per_s},
                      {"dropped", dropped},
                      {"lost", expected - delivered - dropped},
                      {"client_cpu_s", cpu_s},
                      {"client_cpu_us_per_delivery",
                       delivered > 0 ? cpu_s * 1e6 / static_cast<double>(delivered) : 0.0}});
  return {{"p50_ms", s.p50_ms},
          {"p99_ms", s.p99_ms},
          {"max_ms", s.max_ms},
          {"per_s", per_s},
          {"cpu_us", delivered > 0 ? cpu_s * 1e6 / static_cast<double>(delivered) : 0.0},
          {"lost", static_cast<double>(expected - delivered - dropped)}};
}

corvo::bench::metrics run_corvo(const corvo::test::redis_server& server, const workload& w) {
  const double cpu_start = corvo::bench::process_cpu_seconds(::getpid());
  asio::io_context ctx(1);
  const auto cfg = redis::client_config::from_url(server.url());
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), [](std::exception_ptr) {});
  std::vector<std::unique_ptr<pubsub::subscriber>> subs;
  run_state state;
  state.expected = w.subscribers * w.messages;
  state.nanos.reserve(state.expected);
  state.subscribers = &subs;
  state.publisher = &publisher;
  for (std::size_t i = 0; i < w.subscribers; ++i) {
    subs.push_back(std::make_unique<pubsub::subscriber>(ctx.get_executor(), cfg));
    asio::co_spawn(ctx, subs.back()->run(), [](std::exception_ptr) {});
    asio::co_spawn(ctx, collect(*subs.back(), state), [](std::exception_ptr) {});
  }
  std::exception_ptr failed;
  asio::co_spawn(ctx, publish_paced(state, w.messages, w.bytes, w.rate),
                 [&](std::exception_ptr e) { failed = e; });
  ctx.run();
  if (failed) {
    std::rethrow_exception(failed);
  }
  return report("corvo", w, state.nanos, state.last_delivery - state.first_publish, state.dropped,
                corvo::bench::process_cpu_seconds(::getpid()) - cpu_start);
}

corvo::bench::metrics run_raw(const corvo::test::redis_server& server, const workload& w) {
  const double cpu_start = corvo::bench::process_cpu_seconds(::getpid());
  auto r = corvo::bench::raw::run_fanout(server.port(), w.subscribers, w.messages, w.bytes, w.rate);
  return report("raw", w, r.nanos, r.last_delivery - r.first_publish, 0,
                corvo::bench::process_cpu_seconds(::getpid()) - cpu_start);
}

}  // namespace

int main(int argc, char** argv) {
  workload w;
  std::string impl = "both";
  int rounds = 1;
  po::options_description options("pubsub-fanout");
  options.add_options()("help", "this text")(
      "subscribers", po::value(&w.subscribers)->default_value(100), "subscriber connections")(
      "messages", po::value(&w.messages)->default_value(10'000), "messages published")(
      "bytes", po::value(&w.bytes)->default_value(100), "payload size")(
      "rate", po::value(&w.rate)->default_value(1000), "messages published per second")(
      "impl", po::value(&impl)->default_value("both"),
      "corvo, raw (plain sockets and epoll: the floor) or both, alternating")(
      "rounds", po::value(&rounds)->default_value(1), "rounds of each side");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (w.rate <= 0 || w.subscribers == 0 || w.messages == 0 || rounds <= 0) {
    std::cerr << "pubsub-fanout: --rate, --subscribers, --messages and --rounds must be "
                 "positive\n";
    return 2;
  }
  if (impl != "both" && impl != "corvo" && impl != "raw") {
    std::cerr << "pubsub-fanout: --impl must be corvo, raw or both\n";
    return 2;
  }

  corvo::log::init({.min_severity = corvo::log::severity::warning});
  corvo::test::redis_server server;
  std::vector<corvo::bench::side> sides;
  if (impl != "raw") {
    sides.push_back({"corvo", [&] { return run_corvo(server, w); }});
  }
  if (impl != "corvo") {
    sides.push_back({"raw", [&] { return run_raw(server, w); }});
  }
  const auto results = corvo::bench::run_interleaved(sides, 0, rounds);
  double lost = 0;
  for (const auto& [name, runs] : results) {
    for (const auto& m : runs) {
      lost += m.at("lost");
    }
  }
  if (impl == "both") {
    corvo::bench::emit_ratio("pubsub-fanout", "p50_ms", results.at("corvo"), "p50_ms",
                             results.at("raw"), "p50_ms");
    corvo::bench::emit_ratio("pubsub-fanout", "p99_ms", results.at("corvo"), "p99_ms",
                             results.at("raw"), "p99_ms");
    corvo::bench::emit_ratio("pubsub-fanout", "cpu_us", results.at("corvo"), "cpu_us",
                             results.at("raw"), "cpu_us");
  }
  return lost == 0 ? 0 : 1;
}
