// resp-parse: RESP3 parser throughput over a generated, realistic mix of Redis replies.
//
//   scripts/bench resp-parse [google-benchmark flags]
//
// The mix (fixed seed, ~1 MiB): +OK, integers, bulk strings from 16 B to 16 KiB, nulls,
// doubles, ZRANGE arrays, ZRANGE WITHSCORES pairs, HGETALL maps, XREADGROUP replies and
// pub/sub pushes. Cases, each over the whole buffer per iteration:
//   frame          framer only: what the connection runs before a reply is complete; with
//                  the `ignore` adapter this is all the parsing that happens
//   frame-4k-reads framer fed as if 4 KiB reads arrived one by one (incremental path)
//   parse          resp3::parse alone with a no-op visitor (the adapter pass, no adapter)
//   frame+generic  framer, then every reply into a generic_response (owning node tree)
//   frame+typed    framer, then every reply into the C++ type a caller would declare
// Google Benchmark's table goes to stderr; stdout gets one JSON line per case (DESIGN §8):
//   {"bench":"resp-parse","impl":"corvo","case":...,"n":messages,"mb_per_s":...,"per_s":...}
// with MB = 10^6 bytes and per_s = messages per second.

#include <benchmark/benchmark.h>

#include <corvo/redis/adapter.hpp>
#include <corvo/redis/resp3/framer.hpp>
#include <corvo/redis/resp3/parser.hpp>
#include <corvo/redis/resp3/serializer.hpp>
#include <corvo/redis/response.hpp>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace resp3 = corvo::redis::resp3;
namespace redis = corvo::redis;

namespace {

enum class kind { ok, integer, bulk, null, dbl, zrange, zrange_scores, hgetall, xreadgroup, push };

struct reply_mix {
  std::string wire;
  std::vector<kind> kinds;  // one per message, in order
};

const reply_mix& mix() {
  static const reply_mix m = [] {
    reply_mix out;
    std::mt19937 rng(42);
    auto uniform = [&](std::size_t lo, std::size_t hi) {
      return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
    };
    auto text = [&](std::size_t n) {
      std::string s(n, 'x');
      for (char& c : s) {
        c = static_cast<char>('a' + uniform(0, 25));
      }
      return s;
    };
    auto bulk = [&](std::string_view s) { resp3::add_bulk(out.wire, s); };
    // Weights in percent, in enum order.
    std::discrete_distribution<int> pick({20, 15, 20, 5, 5, 8, 4, 8, 5, 10});
    while (out.wire.size() < (1u << 20)) {
      const auto k = static_cast<kind>(pick(rng));
      out.kinds.push_back(k);
      switch (k) {
        case kind::ok:
          out.wire += "+OK\r\n";
          break;
        case kind::integer:
          out.wire += ":" + std::to_string(uniform(0, 10'000'000)) + "\r\n";
          break;
        case kind::bulk: {
          const std::size_t r = uniform(0, 99);
          const std::size_t size = r < 70   ? uniform(16, 64)
                                   : r < 95 ? uniform(100, 1000)
                                            : uniform(4096, 16384);
          bulk(text(size));
          break;
        }
        case kind::null:
          out.wire += "_\r\n";
          break;
        case kind::dbl:
          out.wire += "," + std::to_string(static_cast<double>(uniform(0, 1'000'000)) / 7) + "\r\n";
          break;
        case kind::zrange: {
          const std::size_t n = uniform(10, 100);
          resp3::add_header(out.wire, resp3::type::array, n);
          for (std::size_t i = 0; i < n; ++i) {
            bulk(text(uniform(8, 24)));
          }
          break;
        }
        case kind::zrange_scores: {
          const std::size_t n = uniform(10, 50);
          resp3::add_header(out.wire, resp3::type::array, n);
          for (std::size_t i = 0; i < n; ++i) {
            out.wire += "*2\r\n";
            bulk(text(uniform(8, 24)));
            out.wire += "," + std::to_string(i) + ".5\r\n";
          }
          break;
        }
        case kind::hgetall: {
          const std::size_t n = uniform(5, 30);
          resp3::add_header(out.wire, resp3::type::map, n);
          for (std::size_t i = 0; i < n; ++i) {
            bulk("field" + std::to_string(i));
            bulk(text(uniform(4, 40)));
          }
          break;
        }
        case kind::xreadgroup: {
          const std::size_t entries = uniform(1, 10);
          out.wire += "%1\r\n";
          bulk("events:orders");
          resp3::add_header(out.wire, resp3::type::array, entries);
          for (std::size_t e = 0; e < entries; ++e) {
            out.wire += "*2\r\n";
            bulk("1700000000" + std::to_string(uniform(100, 999)) + "-" + std::to_string(e));
            const std::size_t fields = uniform(2, 6);
            resp3::add_header(out.wire, resp3::type::array, fields * 2);
            for (std::size_t f = 0; f < fields; ++f) {
              bulk("f" + std::to_string(f));
              bulk(text(uniform(4, 64)));
            }
          }
          break;
        }
        case kind::push:
          out.wire += ">3\r\n";
          bulk("message");
          bulk("notifications");
          bulk(text(uniform(20, 200)));
          break;
      }
    }
    return out;
  }();
  return m;
}

// Frames the whole mix; calls on_message(message, index) for each reply.
template <class OnMessage>
void frame_all(std::string_view wire, resp3::framer& framer, OnMessage&& on_message) {
  boost::system::error_code ec;
  std::size_t index = 0;
  while (auto msg = framer.next(wire, ec)) {
    on_message(msg->data, index++);
    wire.remove_prefix(msg->size());
  }
  if (ec || !wire.empty()) {
    std::fprintf(stderr, "resp-parse: the mix did not frame: %s\n", ec.message().c_str());
    std::abort();
  }
}

void finish(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(mix().wire.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(mix().kinds.size()));
}

void frame(benchmark::State& state) {
  const std::string_view wire = mix().wire;
  resp3::framer framer;
  for (auto _ : state) {
    std::size_t n = 0;
    frame_all(wire, framer, [&](std::string_view m, std::size_t) { n += m.size(); });
    benchmark::DoNotOptimize(n);
  }
  finish(state);
}

void frame_4k_reads(benchmark::State& state) {
  const std::string_view wire = mix().wire;
  resp3::framer framer;
  for (auto _ : state) {
    // The buffer grows by 4 KiB per "read"; complete messages are consumed from its front.
    std::size_t begin = 0;
    std::size_t end = 0;
    std::size_t n = 0;
    boost::system::error_code ec;
    while (begin < wire.size()) {
      auto msg = framer.next(wire.substr(begin, end - begin), ec);
      if (msg) {
        begin += msg->size();
        ++n;
      } else if (end < wire.size()) {
        end = std::min(end + 4096, wire.size());
      } else {
        std::abort();  // the mix ends in a partial message: a bug in the generator
      }
    }
    benchmark::DoNotOptimize(n);
  }
  finish(state);
}

void parse(benchmark::State& state) {
  // Message boundaries from one framing pass, outside the measurement.
  std::vector<std::string_view> messages;
  resp3::framer framer;
  frame_all(mix().wire, framer, [&](std::string_view m, std::size_t) { messages.push_back(m); });
  for (auto _ : state) {
    std::size_t nodes = 0;
    for (std::string_view m : messages) {
      boost::system::error_code ec;
      resp3::parse(
          m, [&](const resp3::node_view&) { ++nodes; }, ec);
    }
    benchmark::DoNotOptimize(nodes);
  }
  finish(state);
}

void frame_generic(benchmark::State& state) {
  resp3::framer framer;
  redis::generic_response nodes;
  for (auto _ : state) {
    frame_all(mix().wire, framer, [&](std::string_view m, std::size_t) {
      nodes.clear();  // as a push receiver reusing its buffer would
      boost::system::error_code ec;
      redis::adapt(m, nodes, ec);
    });
    benchmark::DoNotOptimize(nodes.data());
  }
  finish(state);
}

void frame_typed(benchmark::State& state) {
  using fields = std::vector<std::pair<std::string, std::string>>;
  using entries = std::vector<std::pair<std::string, fields>>;
  redis::result<std::string> ok;
  redis::result<std::int64_t> integer;
  redis::result<std::optional<std::string>> bulk;
  redis::result<double> dbl;
  redis::result<std::vector<std::string>> zrange;
  redis::result<std::vector<std::pair<std::string, double>>> zrange_scores;
  redis::result<std::unordered_map<std::string, std::string>> hgetall;
  redis::result<std::map<std::string, entries>> xreadgroup;
  redis::result<std::vector<std::string>> push;
  const std::vector<kind>& kinds = mix().kinds;
  resp3::framer framer;
  for (auto _ : state) {
    frame_all(mix().wire, framer, [&](std::string_view m, std::size_t i) {
      boost::system::error_code ec;
      switch (kinds[i]) {
        case kind::ok:
          redis::adapt(m, ok, ec);
          break;
        case kind::integer:
          redis::adapt(m, integer, ec);
          break;
        case kind::bulk:
        case kind::null:
          redis::adapt(m, bulk, ec);
          break;
        case kind::dbl:
          redis::adapt(m, dbl, ec);
          break;
        case kind::zrange:
          redis::adapt(m, zrange, ec);
          break;
        case kind::zrange_scores:
          redis::adapt(m, zrange_scores, ec);
          break;
        case kind::hgetall:
          redis::adapt(m, hgetall, ec);
          break;
        case kind::xreadgroup:
          redis::adapt(m, xreadgroup, ec);
          break;
        case kind::push:
          redis::adapt(m, push, ec);
          break;
      }
    });
    benchmark::DoNotOptimize(&xreadgroup);
  }
  // A typed reply that failed would make the numbers meaningless.
  if (!ok || !integer || !bulk || !dbl || !zrange || !zrange_scores || !hgetall || !xreadgroup ||
      !push) {
    state.SkipWithError("a typed adapter failed on the mix");
  }
  finish(state);
}

BENCHMARK(frame)->Name("frame");
BENCHMARK(frame_4k_reads)->Name("frame-4k-reads");
BENCHMARK(parse)->Name("parse");
BENCHMARK(frame_generic)->Name("frame+generic");
BENCHMARK(frame_typed)->Name("frame+typed");

// Prints the usual table (to stderr) and collects one JSON line per case for stdout.
class json_lines_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred || run.run_type != Run::RT_Iteration) {
        continue;
      }
      const double bytes_per_s = counter(run, "bytes_per_second");
      const double items_per_s = counter(run, "items_per_second");
      char line[512];
      std::snprintf(
          line, sizeof line,
          "{\"bench\":\"resp-parse\",\"impl\":\"corvo\",\"case\":\"%s\",\"n\":%lld,"
          "\"mb_per_s\":%.1f,\"per_s\":%.0f,\"bytes\":%zu,\"messages\":%zu}",
          run.benchmark_name().c_str(),
          static_cast<long long>(run.iterations) * static_cast<long long>(mix().kinds.size()),
          bytes_per_s / 1e6, items_per_s, mix().wire.size(), mix().kinds.size());
      lines_.emplace_back(line);
    }
  }
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  static double counter(const Run& run, const char* name) {
    auto it = run.counters.find(name);
    return it == run.counters.end() ? 0.0 : static_cast<double>(it->second);
  }
  std::vector<std::string> lines_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  std::fprintf(stderr, "resp-parse: %zu bytes, %zu replies in the mix\n", mix().wire.size(),
               mix().kinds.size());
  json_lines_reporter reporter;
  reporter.SetOutputStream(&std::cerr);
  reporter.SetErrorStream(&std::cerr);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  for (const std::string& line : reporter.lines()) {
    std::cout << line << '\n';
  }
  benchmark::Shutdown();
  return 0;
}
