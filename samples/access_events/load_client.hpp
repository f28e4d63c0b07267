#pragma once
// The concurrent HTTP client of the demo and the test: `connections` keep-alive
// connections send `requests` GETs between them over a fixed mix of paths (every access
// category), and count what they sent per day and category.

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace access_events {

namespace asio = boost::asio;

struct load_result {
  std::uint64_t sent = 0;    ///< requests that got a response (any status)
  std::uint64_t failed = 0;  ///< requests without a response (connection errors)
  /// Responses per UTC day ("YYYY-MM-DD") and category (classify() of the path).
  std::map<std::string, std::map<std::string, std::int64_t>> per_day;
  std::vector<double> latencies_ms;  ///< per request, in completion order
  double seconds = 0;                ///< wall time of the whole load
};

/// The path of request number `i` of a load (cycles through every category).
std::string load_path(std::uint64_t i);

/// Sends `requests` requests to 127.0.0.1:`port` over `connections` connections.
asio::awaitable<load_result> run_load(unsigned short port, std::uint64_t requests,
                                      std::size_t connections, std::uint64_t first_index = 0);

/// One GET; returns the status and body. Throws system_error on connection failures.
asio::awaitable<std::pair<int, std::string>> http_get(unsigned short port, std::string target);

/// p-th percentile (0..100) of `values` (sorted copy); 0 when empty.
double percentile(std::vector<double> values, double p);

}  // namespace access_events
