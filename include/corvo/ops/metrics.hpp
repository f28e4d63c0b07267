#pragma once
// A small metrics registry rendered in the Prometheus text exposition format (0.0.4).
//
//   ops::registry metrics;
//   auto& runs = metrics.counter("corvo_runs_total", "Handler runs", {{"namespace", "mail"}});
//   runs.inc();
//   auto& late = metrics.histogram("corvo_lateness_seconds", "Start - due", ops::latency_buckets(),
//                                  {{"type", "send"}});
//   late.observe(0.012);
//   metrics.add_collector([&] { metrics.gauge("corvo_depth", "…").set(queue.size()); });
//   std::string body = metrics.render();   // GET /metrics
//
// Families: a name has one type and one help text (a second registration with another type,
// another help or other buckets is std::invalid_argument); each distinct label set of a name
// is one series, created on first use and kept for the registry's life (series references
// stay valid). Names must match [a-zA-Z_:][a-zA-Z0-9_:]* and label names
// [a-zA-Z_][a-zA-Z0-9_]* (std::invalid_argument otherwise); label values may hold anything
// (escaped on output). Counters' names end with `_total` by convention; the registry does
// not enforce it.
//
// Collectors copy counters that other layers keep (dispatcher_stats, consumer_stats, …) into
// series right before a scrape: synchronous ones in render(), asynchronous ones (a Redis
// query) in collect(). Threading: none; use a registry from one executor.

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corvo::ops {

namespace asio = boost::asio;

/// Label name/value pairs; their order does not matter (series are keyed by the sorted set).
using label_set = std::vector<std::pair<std::string, std::string>>;

/// A value that only goes up (reset only by a restart of the process).
class counter {
 public:
  void inc(double by = 1) noexcept { value_ += by; }
  /// Mirrors a monotonic count kept elsewhere (a stats struct) at scrape time.
  void set_total(double total) noexcept { value_ = total; }
  double value() const noexcept { return value_; }

 private:
  double value_ = 0;
};

/// A value that goes up and down.
class gauge {
 public:
  void set(double v) noexcept { value_ = v; }
  void add(double by) noexcept { value_ += by; }
  double value() const noexcept { return value_; }

 private:
  double value_ = 0;
};

/// Observations counted in cumulative buckets (upper bounds, ascending; +Inf is implicit).
class histogram {
 public:
  explicit histogram(std::vector<double> bounds);
  void observe(double v) noexcept;
  /// Mirrors a histogram kept elsewhere (a stats struct) at scrape time: `counts` per bucket,
  /// not cumulative, the last for +Inf (as many as bucket_counts()), and the sum of the
  /// observations. std::invalid_argument when the number of buckets differs.
  void set_counts(std::span<const std::uint64_t> counts, double sum);
  const std::vector<double>& bounds() const noexcept { return bounds_; }
  /// Non-cumulative count per bucket; the last element is the +Inf bucket.
  const std::vector<std::uint64_t>& bucket_counts() const noexcept { return counts_; }
  std::uint64_t count() const noexcept { return count_; }
  double sum() const noexcept { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

/// Buckets for latencies in seconds: 0.5 ms .. 60 s.
std::vector<double> latency_buckets();

enum class metric_type { counter, gauge, histogram };

class registry {
 public:
  registry();
  ~registry();
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  /// The series of `name` with `labels`, created (zero) on first use. See the file comment
  /// for the name rules and the std::invalid_argument cases.
  ops::counter& counter(std::string_view name, std::string_view help, const label_set& labels = {});
  ops::gauge& gauge(std::string_view name, std::string_view help, const label_set& labels = {});
  ops::histogram& histogram(std::string_view name, std::string_view help,
                            const std::vector<double>& bounds, const label_set& labels = {});

  /// A function render() calls first, to bring series up to date.
  void add_collector(std::function<void()> collect);
  /// A coroutine collect() awaits (one after the other), e.g. a store's stats() query. One
  /// that throws is logged (channel "ops") and counted in corvo_ops_collector_errors_total;
  /// the scrape goes on with the values it had.
  void add_async_collector(std::function<asio::awaitable<void>()> collect);

  /// Runs the asynchronous collectors. The HTTP endpoint calls it before render().
  asio::awaitable<void> collect();

  /// Runs the synchronous collectors, then renders every family in name order, each series
  /// in label order: `# HELP`, `# TYPE`, then the samples.
  std::string render();

  /// The value of a counter or gauge series, or a histogram series' count; -1 when there
  /// is no such series. For tests.
  double value(std::string_view name, const label_set& labels = {}) const;

 private:
  struct family;
  family& family_of(std::string_view name, std::string_view help, metric_type type,
                    const std::vector<double>* bounds);
  std::map<std::string, std::unique_ptr<family>, std::less<>> families_;
  std::vector<std::function<void()>> collectors_;
  std::vector<std::function<asio::awaitable<void>()>> async_collectors_;
};

/// `s` escaped as a label value: backslash, double quote and newline.
std::string escape_label_value(std::string_view s);
/// A sample value as Prometheus writes it: integers without exponent, +Inf, -Inf, NaN.
std::string format_value(double v);

}  // namespace corvo::ops
