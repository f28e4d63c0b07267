#pragma once
// The concurrent HTTP client of the demo and the tests: `connections` keep-alive
// connections send the issuance requests of a plan (POST /api/coupons/{id}/issue?userId=N)
// between them and record each answer (status, request id) and its latency.

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace coupon_issue {

namespace asio = boost::asio;

/// One issuance request: the URL's coupon {id} and userId ("" leaves the parameter out).
struct issue_call {
  std::string coupon;
  std::string user;
};

/// The answer to one call.
struct issue_reply {
  int status = 0;          ///< HTTP status; 0 when the connection failed
  std::string request_id;  ///< from a 202 answer's {"requestId": …}
  double latency_ms = 0;
};

struct issue_load {
  std::vector<issue_reply> replies;  ///< one per call, in the plan's order
  std::uint64_t failed = 0;          ///< calls without an answer (connection errors)
  double seconds = 0;                ///< wall time of the whole load
};

/// The target of `call`.
std::string issue_target(const issue_call& call);

/// Sends every call of `plan` to 127.0.0.1:`port` over `connections` connections.
asio::awaitable<issue_load> fire(unsigned short port, const std::vector<issue_call>& plan,
                                 std::size_t connections);

/// One request without a body; returns status and body. Throws system_error on connection
/// failures.
asio::awaitable<std::pair<int, std::string>> http_call(unsigned short port, std::string method,
                                                       std::string target);

}  // namespace coupon_issue
