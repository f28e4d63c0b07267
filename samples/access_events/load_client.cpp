#include "load_client.hpp"

#include <chrono>
#include <functional>
#include <http/load.hpp>

#include "access_log.hpp"
#include "event_store.hpp"

namespace access_events {

namespace http = corvo::samples::http;

std::string load_path(std::uint64_t i) {
  static const char* const paths[] = {
      "/admin/api/v1/users",    "/admin/api/v1/users/",
      "/admin/api/v1/settings", "/admin/api/v1/event/access/categories",
      "/admin/dashboard",       "/api/orders/",
      "/static/app.js",         "/index.html"};
  std::string path = paths[i % std::size(paths)];
  if (path.back() == '/') {
    path += std::to_string(i % 7);
  }
  return path + "?n=" + std::to_string(i);
}

asio::awaitable<load_result> run_load(unsigned short port, std::uint64_t requests,
                                      std::size_t connections, std::uint64_t first_index) {
  load_result result;
  // Named, not temporaries in the co_await expression (GCC 12).
  std::function<http::request_line(std::size_t)> request = [first_index](std::size_t i) {
    return http::request_line{"GET", load_path(first_index + i)};
  };
  std::function<void(http::answer&)> record = [&result, first_index](http::answer& a) {
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    ++result.per_day[utc_day(now_ms)][classify(load_path(first_index + a.index))];
    result.latencies_ms.push_back(a.latency_ms);
  };
  const auto totals = co_await http::run_load(port, requests, connections, request, record);
  result.sent = totals.answered;
  result.failed = totals.failed;
  result.seconds = totals.seconds;
  co_return result;
}

asio::awaitable<std::pair<int, std::string>> http_get(unsigned short port, std::string target) {
  return http::call(port, "GET", std::move(target));
}

double percentile(std::vector<double> values, double p) {
  return http::percentile(std::move(values), p);
}

}  // namespace access_events
