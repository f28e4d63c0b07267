#pragma once
// Internals of ops::dashboard shared by dashboard.cpp and the dashboard_*.cpp route files.

#include <boost/json/value.hpp>
#include <chrono>
#include <corvo/ops/dashboard.hpp>
#include <corvo/schedule/task.hpp>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace corvo::ops {

/// Lateness observations of the last `span`, for the page's percentile chart.
struct lateness_window {
  using clock = std::chrono::steady_clock;
  static constexpr std::size_t max_samples = 20'000;
  std::chrono::seconds span{60};
  std::deque<std::pair<clock::time_point, double>> samples;

  void add(clock::time_point at, double seconds);
  /// {"p50","p90","p99","count"} of the samples within `span` of `now` (null values when
  /// there are none).
  boost::json::object percentiles(clock::time_point now);
};

struct namespace_view {
  std::string name;
  schedule::store* tasks = nullptr;
  schedule::dispatcher* dispatch = nullptr;
  /// namespace_options::events: the namespace's processes write task events.
  bool events = false;
  lateness_window lateness;
};

struct stream_view {
  stream::admin* admin = nullptr;
  std::string stream;
  std::string dead_letter_stream;
};

struct queue_view {
  redis::client* redis = nullptr;
  std::string name;
};

struct dashboard::impl {
  std::vector<std::unique_ptr<namespace_view>> namespaces;
  std::vector<stream_view> streams;
  std::vector<queue_view> queues;
  const health::monitor* monitor = nullptr;
};

/// A 200 application/json response.
response json_response(const call& c, const boost::json::value& body);

/// The namespace of the parameter `ns`; bad_request naming it when the dashboard has none.
namespace_view& find_namespace(dashboard::impl& board, const call& c);

/// Milliseconds since the epoch (with the microseconds as a fraction), as the page reads times.
double epoch_ms(schedule::time_point t);

/// GET /api/events (dashboard_events.cpp).
void install_event_routes(router& routes, dashboard::impl& board);

/// The routes of the stream views (dashboard_streams.cpp).
void install_stream_routes(router& routes, dashboard::impl& board);

/// The routes of the queue dead-letter views (dashboard_queues.cpp).
void install_queue_routes(router& routes, dashboard::impl& board);

}  // namespace corvo::ops
