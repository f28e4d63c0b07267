// Pub/sub fan-out: 1 publisher, N subscriber connections (pubsub::subscriber each), M
// messages of B bytes published at an even pace on one channel; the latency of every
// delivery from just before PUBLISH to the subscriber's receive() returning it.
//
//   scripts/bench pubsub-fanout [--subscribers 100] [--messages 10000] [--bytes 100]
//                               [--rate 1000]
//
// Everything runs on one io_context thread, as an application would run it: the publisher's
// send time travels in the payload. per_s is deliveries (messages x subscribers) per
// second between the first publish and the last delivery.

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

}  // namespace

int main(int argc, char** argv) {
  std::size_t subscribers = 100, messages = 10'000, bytes = 100;
  double rate = 1000;
  po::options_description options("pubsub-fanout");
  options.add_options()("help", "this text")(
      "subscribers", po::value(&subscribers)->default_value(100), "subscriber connections")(
      "messages", po::value(&messages)->default_value(10'000), "messages published")(
      "bytes", po::value(&bytes)->default_value(100), "payload size")(
      "rate", po::value(&rate)->default_value(1000), "messages published per second");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (rate <= 0 || subscribers == 0 || messages == 0) {
    std::cerr << "pubsub-fanout: --rate, --subscribers and --messages must be positive\n";
    return 2;
  }

  corvo::log::init({.min_severity = corvo::log::severity::warning});
  corvo::test::redis_server server;
  asio::io_context ctx(1);
  const auto cfg = redis::client_config::from_url(server.url());
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), [](std::exception_ptr) {});
  std::vector<std::unique_ptr<pubsub::subscriber>> subs;
  run_state state;
  state.expected = subscribers * messages;
  state.nanos.reserve(state.expected);
  state.subscribers = &subs;
  state.publisher = &publisher;
  for (std::size_t i = 0; i < subscribers; ++i) {
    subs.push_back(std::make_unique<pubsub::subscriber>(ctx.get_executor(), cfg));
    asio::co_spawn(ctx, subs.back()->run(), [](std::exception_ptr) {});
    asio::co_spawn(ctx, collect(*subs.back(), state), [](std::exception_ptr) {});
  }
  std::exception_ptr failed;
  asio::co_spawn(ctx, publish_paced(state, messages, bytes, rate),
                 [&](std::exception_ptr e) { failed = e; });
  ctx.run();
  if (failed) {
    std::rethrow_exception(failed);
  }

  const std::size_t delivered = state.nanos.size();
  const double seconds =
      std::chrono::duration<double>(state.last_delivery - state.first_publish).count();
  const auto s = corvo::bench::summarize(state.nanos);
  corvo::bench::emit({{"bench", "pubsub-fanout"},
                      {"impl", "corvo"},
                      {"n", delivered},
                      {"subscribers", subscribers},
                      {"messages", messages},
                      {"bytes", bytes},
                      {"rate", rate},
                      {"p50_ms", s.p50_ms},
                      {"p99_ms", s.p99_ms},
                      {"max_ms", s.max_ms},
                      {"per_s", seconds > 0 ? static_cast<double>(delivered) / seconds : 0.0},
                      {"dropped", state.dropped},
                      {"lost", state.expected - delivered - state.dropped}});
  return delivered + state.dropped == state.expected ? 0 : 1;
}
