#pragma once
// Shared by the bench programs: one JSON line per result (DESIGN §8), latency percentiles,
// and running redis-benchmark as the baseline.

#include <unistd.h>

#include <algorithm>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/child_process.hpp"

namespace corvo::bench {

/// CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat.
inline double process_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) {
    return 0;
  }
  std::istringstream fields(text.substr(close + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) {
    fields >> skip;
  }
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// A number field of an INFO reply ("name:value", or "name:calls=value,..." when `field`
/// includes "calls="), 0 when absent.
inline double info_number(const std::string& info, const std::string& field) {
  const auto at = info.find(field);
  return at == std::string::npos ? 0.0 : std::stod(info.substr(at + field.size()));
}

/// Prints `fields` as one JSON line on stdout.
inline void emit(const boost::json::object& fields) {
  std::printf("%s\n", boost::json::serialize(fields).c_str());
  std::fflush(stdout);
}

/// The ratio line: corvo ÷ baseline for one metric.
inline void emit_ratio(const std::string& bench, const std::string& metric, double corvo,
                       double baseline) {
  emit({{"bench", bench},
        {"impl", "ratio"},
        {"metric", metric},
        {"ratio", baseline > 0 ? corvo / baseline : 0.0}});
}

/// The metrics one run of one side produced (`per_s`, `p50_ms`, ...).
using metrics = std::map<std::string, double>;

/// One side of a comparison: a name and a function that runs it once.
struct side {
  std::string name;
  std::function<metrics()> run;
};

/// Runs every side `warmup` times (results dropped: first-run costs such as page faults,
/// cold connections and script loading stay out of the comparison), then `rounds` rounds of
/// every side, rotating which side goes first each round, so a noisy moment hits both
/// sides and no side always runs first or last. Progress goes to stderr. Returns each
/// side's results, one per round.
inline std::map<std::string, std::vector<metrics>> run_interleaved(const std::vector<side>& sides,
                                                                   int warmup, int rounds) {
  for (int w = 0; w < warmup; ++w) {
    for (const auto& s : sides) {
      std::cerr << "warm-up " << s.name << "\n";
      s.run();
    }
  }
  std::map<std::string, std::vector<metrics>> out;
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t i = 0; i < sides.size(); ++i) {
      const auto& s = sides[(i + static_cast<std::size_t>(r)) % sides.size()];
      out[s.name].push_back(s.run());
      std::cerr << "round " << r + 1 << "/" << rounds << " " << s.name << ":";
      for (const auto& [key, value] : out[s.name].back()) {
        std::cerr << " " << key << "=" << value;
      }
      std::cerr << "\n";
    }
  }
  return out;
}

/// Median, smallest and largest of some values.
struct spread {
  double median = 0, min = 0, max = 0;
};

inline spread spread_of(std::vector<double> values) {
  if (values.empty()) {
    return {};
  }
  std::sort(values.begin(), values.end());
  const auto n = values.size();
  const double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2.0;
  return {median, values.front(), values.back()};
}

/// The median over rounds of one metric of one side.
inline double median_of(const std::vector<metrics>& rounds, const std::string& key) {
  std::vector<double> values;
  for (const auto& m : rounds) {
    values.push_back(m.at(key));
  }
  return spread_of(values).median;
}

/// The ratio line over interleaved rounds: round i's corvo value ÷ round i's baseline value
/// of one metric; `ratio` is the median of those, with the smallest and largest.
inline void emit_ratio(const std::string& bench, const std::string& metric,
                       const std::vector<metrics>& corvo, const std::string& corvo_key,
                       const std::vector<metrics>& baseline, const std::string& baseline_key) {
  std::vector<double> ratios;
  for (std::size_t i = 0; i < corvo.size() && i < baseline.size(); ++i) {
    const double b = baseline[i].at(baseline_key);
    ratios.push_back(b > 0 ? corvo[i].at(corvo_key) / b : 0.0);
  }
  const auto s = spread_of(ratios);
  emit({{"bench", bench},
        {"impl", "ratio"},
        {"metric", metric},
        {"ratio", s.median},
        {"ratio_min", s.min},
        {"ratio_max", s.max},
        {"rounds", ratios.size()}});
}

struct latency_summary {
  std::size_t n = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0, avg_ms = 0;
};

/// Percentiles of latencies given in nanoseconds (sorts its argument).
inline latency_summary summarize(std::vector<std::int64_t>& nanos) {
  latency_summary s;
  s.n = nanos.size();
  if (nanos.empty()) {
    return s;
  }
  std::sort(nanos.begin(), nanos.end());
  auto at = [&](double q) {
    const auto index = static_cast<std::size_t>(q * static_cast<double>(nanos.size() - 1));
    return static_cast<double>(nanos[index]) / 1e6;
  };
  s.p50_ms = at(0.50);
  s.p99_ms = at(0.99);
  s.max_ms = static_cast<double>(nanos.back()) / 1e6;
  double total = 0;
  for (auto v : nanos)
    total += static_cast<double>(v);
  s.avg_ms = total / static_cast<double>(nanos.size()) / 1e6;
  return s;
}

/// One row of `redis-benchmark --csv`: test name → column → value.
using benchmark_rows = std::map<std::string, std::map<std::string, double>>;

/// Runs redis-benchmark with `args` (plus --csv --precision 3) and parses its CSV output.
inline benchmark_rows run_redis_benchmark(std::vector<std::string> args) {
  std::vector<std::string> argv{"redis-benchmark"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--csv", "--precision", "3"});
  const std::string out = corvo::test::run_command_checked(argv, std::chrono::minutes(10));
  auto unquote = [](std::string field) {
    if (field.size() >= 2 && field.front() == '"')
      field = field.substr(1, field.size() - 2);
    return field;
  };
  auto split = [&](const std::string& line) {
    std::vector<std::string> fields;
    std::stringstream in(line);
    for (std::string f; std::getline(in, f, ',');)
      fields.push_back(unquote(f));
    return fields;
  };
  std::stringstream in(out);
  std::string line;
  std::vector<std::string> header;
  benchmark_rows rows;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    auto fields = split(line);
    if (fields.empty())
      continue;
    if (fields[0] == "test") {
      header = fields;
      continue;
    }
    for (std::size_t i = 1; i < fields.size() && i < header.size(); ++i) {
      rows[fields[0]][header[i]] = std::stod(fields[i]);
    }
  }
  if (rows.empty()) {
    throw std::runtime_error("redis-benchmark printed no results:\n" + out);
  }
  return rows;
}

}  // namespace corvo::bench
