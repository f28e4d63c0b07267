// kafka-produce: producer throughput and send→delivery-report latency, corvo's producer vs a
// plain librdkafka C loop (rd_kafka_producev + rd_kafka_poll), same configuration, same run,
// on the embedded mock cluster.
//
//   scripts/bench kafka-produce [--messages 200000] [--size 100] [--partitions 8]
//                               [--window 10000] [--senders 10000] [--rounds 5] [--warmup 1]
//                               [--impl all|librdkafka-c|corvo|corvo-coroutines]
//
// Both sides: idempotent producer, acks=all, librdkafka defaults otherwise (linger.ms 5,
// queue.buffering.max.messages 100000), 100-byte values, keys spread over the partitions,
// each round into a fresh topic. The C loop produces as fast as librdkafka accepts, serving
// delivery reports with rd_kafka_poll(rk, 0) after every message, and blocking in
// rd_kafka_poll while `--window` messages are unreported (or the queue is full). corvo is
// driven the two ways an application would:
//   corvo             one coroutine sends with a completion callback per message and
//                     `co_await producer.wait_below(--window)` as back-pressure — the
//                     like-for-like comparison with the C loop. The window (default 10000
//                     messages in flight, for both) matters: with 100000 open (librdkafka's
//                     queue limit) the per-message state no longer fits the caches and both
//                     loops spend about twice the CPU per message (`--window 100000`);
//   corvo-coroutines  `--senders` coroutines that each `co_await producer.send(...)` one
//                     message after another (a queue-full send suspends).
// Latency is from the send call to the delivery report. After `--warmup` discarded runs of
// each side, rounds alternate the sides (support/report.hpp run_interleaved); each side's
// line is its median round, and the ratio line is the median of the per-round ratios of
// corvo's throughput to the C loop's, with the smallest and largest (`ratio_min`,
// `ratio_max`), so one noisy moment does not decide it.

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <corvo/core/log.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/kafka/producer.hpp>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/report.hpp"

namespace asio = boost::asio;
namespace kafka = corvo::kafka;
namespace po = boost::program_options;
using clock_type = std::chrono::steady_clock;

namespace {

struct settings {
  std::size_t messages = 200'000;
  std::size_t size = 100;
  int partitions = 8;
  std::size_t senders = 10'000;
  std::size_t window = 10'000;
  int rounds = 5;
  int warmup = 1;
  std::string impl = "all";  // or one of librdkafka-c, corvo, corvo-coroutines
};

// CPU time of the calling thread (the producing loop), for the diagnostics on stderr.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct round_result {
  double per_s = 0;
  double loop_cpu_us_per_message = 0;
  corvo::bench::latency_summary latency;
  std::size_t failed = 0;
};

std::vector<std::string> make_keys(std::size_t count) {
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < count; ++i) {
    keys.push_back("key-" + std::to_string(i));
  }
  return keys;
}

// --- the baseline: a plain librdkafka C loop ------------------------------------------

struct c_loop_state {
  std::vector<clock_type::time_point> sent;
  std::vector<std::int64_t> nanos;
  std::size_t delivered = 0;
  std::size_t failed = 0;
};

void c_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* state = static_cast<c_loop_state*>(opaque);
  const auto index = reinterpret_cast<std::uintptr_t>(m->_private);
  state->nanos.push_back((clock_type::now() - state->sent[index]).count());
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++state->failed;
  }
  ++state->delivered;
}

round_result run_c_loop(const settings& s, const std::string& servers, const std::string& topic) {
  std::array<char, 512> err{};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [name, value] :
       {std::pair{"bootstrap.servers", servers.c_str()}, std::pair{"enable.idempotence", "true"},
        std::pair{"acks", "all"}}) {
    if (rd_kafka_conf_set(conf, name, value, err.data(), err.size()) != RD_KAFKA_CONF_OK) {
      throw std::runtime_error(err.data());
    }
  }
  c_loop_state state;
  state.sent.resize(s.messages);
  state.nanos.reserve(s.messages);
  rd_kafka_conf_set_dr_msg_cb(conf, c_delivery);
  rd_kafka_conf_set_opaque(conf, &state);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err.data(), err.size());
  if (rk == nullptr) {
    throw std::runtime_error(err.data());
  }
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const std::string value(s.size, 'v');
  const auto keys = make_keys(static_cast<std::size_t>(s.partitions) * 16);

  const auto start = clock_type::now();
  const double cpu_start = thread_cpu_seconds();
  for (std::size_t i = 0; i < s.messages; ++i) {
    const auto& key = keys[i % keys.size()];
    // The same window as corvo's sender: at most `window` messages not yet reported.
    while (i - state.delivered >= s.window) {
      rd_kafka_poll(rk, 1);
    }
    for (;;) {
      state.sent[i] = clock_type::now();
      const auto e = rd_kafka_producev(
          rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(i))),
          RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        break;
      }
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        throw std::runtime_error(rd_kafka_err2str(e));
      }
      rd_kafka_poll(rk, 10);
    }
    rd_kafka_poll(rk, 0);
  }
  while (state.delivered < s.messages) {
    rd_kafka_poll(rk, 10);
  }
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  const double cpu = thread_cpu_seconds() - cpu_start;
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);

  round_result result;
  result.per_s = static_cast<double>(s.messages) / seconds;
  result.loop_cpu_us_per_message = cpu * 1e6 / static_cast<double>(s.messages);
  result.latency = corvo::bench::summarize(state.nanos);
  result.failed = state.failed;
  return result;
}

// --- corvo ------------------------------------------------------------------------------

struct corvo_state {
  const settings* s = nullptr;
  std::string topic;
  std::string value;
  std::vector<std::string> keys;
  std::size_t next = 0;
  std::size_t failed = 0;
  std::vector<std::int64_t> nanos;
};

asio::awaitable<void> sender(kafka::producer* producer, corvo_state* state) {
  while (state->next < state->s->messages) {
    const std::size_t i = state->next++;
    const auto& key = state->keys[i % state->keys.size()];
    const auto sent = clock_type::now();
    try {
      co_await producer->send(state->topic, key, state->value);
    } catch (const std::exception&) {
      ++state->failed;
    }
    state->nanos.push_back((clock_type::now() - sent).count());
  }
}

// One send's completion in callback mode: records the latency.
struct record_report {
  corvo_state* state;
  clock_type::time_point sent;
  void operator()(boost::system::error_code ec, kafka::delivery_report) const {
    if (ec) {
      ++state->failed;
    }
    state->nanos.push_back((clock_type::now() - sent).count());
  }
};

asio::awaitable<void> send_with_callbacks(kafka::producer* producer, corvo_state* state,
                                          std::size_t window) {
  const std::size_t n = state->s->messages;
  for (std::size_t i = 0; i < n; ++i) {
    if (producer->in_flight() >= window) {
      co_await producer->wait_below(window);
    }
    const auto& key = state->keys[i % state->keys.size()];
    producer->async_send(
        kafka::outgoing_message{.topic = state->topic, .key = key, .value = state->value},
        record_report{state, clock_type::now()});
  }
}

asio::awaitable<void> close_producer(kafka::producer* producer) {
  co_await producer->close();
}

round_result run_corvo(const settings& s, const std::string& servers, const std::string& topic,
                       bool coroutines) {
  asio::io_context ctx(1);
  kafka::producer producer(ctx.get_executor(), kafka::client_config(servers));
  corvo_state state;
  state.s = &s;
  state.topic = topic;
  state.value.assign(s.size, 'v');
  state.keys = make_keys(static_cast<std::size_t>(s.partitions) * 16);
  state.nanos.reserve(s.messages);

  const auto start = clock_type::now();
  const double cpu_start = thread_cpu_seconds();
  if (coroutines) {
    for (std::size_t i = 0; i < s.senders; ++i) {
      asio::co_spawn(ctx, sender(&producer, &state), asio::detached);
    }
  } else {
    asio::co_spawn(ctx, send_with_callbacks(&producer, &state, s.window), asio::detached);
  }
  // Run until every send completed (the producer's safety-net timer keeps the context
  // alive, so count completions instead of waiting for run() to return).
  while (state.nanos.size() < s.messages) {
    ctx.run_one();
  }
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  const double cpu = thread_cpu_seconds() - cpu_start;
  asio::co_spawn(ctx, close_producer(&producer), asio::detached);
  ctx.run_for(std::chrono::seconds{10});

  round_result result;
  result.per_s = static_cast<double>(s.messages) / seconds;
  result.loop_cpu_us_per_message = cpu * 1e6 / static_cast<double>(s.messages);
  result.latency = corvo::bench::summarize(state.nanos);
  result.failed = state.failed;
  return result;
}

corvo::bench::metrics to_metrics(const round_result& r) {
  return {{"per_s", r.per_s},           {"loop_cpu_us_per_msg", r.loop_cpu_us_per_message},
          {"p50_ms", r.latency.p50_ms}, {"p99_ms", r.latency.p99_ms},
          {"max_ms", r.latency.max_ms}, {"failed", static_cast<double>(r.failed)}};
}

void emit(const std::string& impl, const settings& s,
          const std::vector<corvo::bench::metrics>& rounds) {
  // The median round by throughput, whole (its latencies belong to it).
  auto sorted = rounds;
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.at("per_s") < b.at("per_s"); });
  const auto& r = sorted[sorted.size() / 2];
  corvo::bench::emit({{"bench", "kafka-produce"},
                      {"impl", impl},
                      {"n", s.messages},
                      {"rounds", rounds.size()},
                      {"message_bytes", s.size},
                      {"partitions", s.partitions},
                      {"per_s", r.at("per_s")},
                      {"loop_cpu_us_per_msg", r.at("loop_cpu_us_per_msg")},
                      {"p50_ms", r.at("p50_ms")},
                      {"p99_ms", r.at("p99_ms")},
                      {"max_ms", r.at("max_ms")},
                      {"failed", r.at("failed")}});
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  po::options_description options("kafka-produce");
  options.add_options()("help", "this text")(
      "messages", po::value(&s.messages)->default_value(s.messages), "messages per round")(
      "size", po::value(&s.size)->default_value(s.size), "value bytes")(
      "partitions", po::value(&s.partitions)->default_value(s.partitions), "topic partitions")(
      "senders", po::value(&s.senders)->default_value(s.senders),
      "corvo: concurrent sending coroutines")(
      "rounds", po::value(&s.rounds)->default_value(s.rounds), "rounds per implementation")(
      "warmup", po::value(&s.warmup)->default_value(s.warmup),
      "discarded runs of each implementation first")(
      "impl", po::value(&s.impl)->default_value(s.impl),
      "all, or one of librdkafka-c, corvo, corvo-coroutines")(
      "window", po::value(&s.window)->default_value(s.window),
      "corvo: sends in flight before wait_below suspends the sender");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  corvo::log::init({.min_severity = corvo::log::severity::warning});

  kafka::embedded_cluster cluster(1);
  const std::vector<std::string> impls =
      s.impl == "all" ? std::vector<std::string>{"librdkafka-c", "corvo", "corvo-coroutines"}
                      : std::vector<std::string>{s.impl};
  int topic_number = 0;
  std::vector<corvo::bench::side> sides;
  for (const auto& impl : impls) {
    sides.push_back({impl, [&, impl] {
                       const std::string topic = "produce-" + std::to_string(topic_number++);
                       cluster.create_topic(topic, s.partitions, 1);
                       const auto& servers = cluster.bootstrap_servers();
                       return to_metrics(
                           impl == "librdkafka-c"
                               ? run_c_loop(s, servers, topic)
                               : run_corvo(s, servers, topic, impl == "corvo-coroutines"));
                     }});
  }
  const auto rounds = corvo::bench::run_interleaved(sides, s.warmup, s.rounds);
  for (const auto& impl : impls) {
    emit(impl, s, rounds.at(impl));
  }
  if (rounds.contains("librdkafka-c") && rounds.contains("corvo")) {
    corvo::bench::emit_ratio("kafka-produce", "per_s", rounds.at("corvo"), "per_s",
                             rounds.at("librdkafka-c"), "per_s");
  }
  return 0;
}
