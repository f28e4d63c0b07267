#pragma once
// The samples' HTTP load client (their demos and tests drive the sample servers with it):
// `connections` keep-alive connections to 127.0.0.1 share a numbered list of requests,
// each taking the next number until none is left, and report every answer.

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace corvo::samples::http {

namespace asio = boost::asio;

/// A request without a body: method ("GET", "POST", …) and target ("/path?query").
struct request_line {
  std::string method;
  std::string target;
};

/// One answered request of a load.
struct answer {
  std::size_t index = 0;  ///< the request's number
  int status = 0;
  std::string body;
  double latency_ms = 0;  ///< from before the write to the whole response read
};

struct load_totals {
  std::uint64_t answered = 0;
  std::uint64_t failed = 0;  ///< requests without an answer (connection errors, time-outs)
  double seconds = 0;        ///< wall time of the whole load
};

/// Sends requests number 0 … `count` − 1 (`request(i)` makes number i) to
/// 127.0.0.1:`port` over `connections` keep-alive connections, calling `on_answer` for each
/// answered one (in completion order). A connection that fails drops its request (counted
/// in `failed`) and reconnects for the next. Each request has 60 s.
asio::awaitable<load_totals> run_load(unsigned short port, std::size_t count,
                                      std::size_t connections,
                                      std::function<request_line(std::size_t)> request,
                                      std::function<void(answer&)> on_answer);

/// One request on a connection of its own; returns status and body. Throws
/// boost::system::system_error when there is no answer within 30 s.
asio::awaitable<std::pair<int, std::string>> call(unsigned short port, std::string method,
                                                  std::string target);

/// The p-th percentile (0 … 100) of `values` (nearest rank below); 0 when empty.
double percentile(std::vector<double> values, double p);

}  // namespace corvo::samples::http
