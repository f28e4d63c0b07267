#include "load_client.hpp"

#include <boost/json.hpp>
#include <functional>
#include <http/load.hpp>

namespace coupon_issue {

namespace json = boost::json;
namespace http = corvo::samples::http;

std::string issue_target(const issue_call& call) {
  std::string target = "/api/coupons/" + call.coupon + "/issue";
  if (!call.user.empty()) {
    target += "?userId=" + call.user;
  }
  return target;
}

asio::awaitable<issue_load> fire(unsigned short port, const std::vector<issue_call>& plan,
                                 std::size_t connections) {
  issue_load out;
  out.replies.resize(plan.size());
  // Named, not temporaries in the co_await expression (GCC 12).
  std::function<http::request_line(std::size_t)> request = [&plan](std::size_t i) {
    return http::request_line{"POST", issue_target(plan[i])};
  };
  std::function<void(http::answer&)> record = [&out](http::answer& a) {
    auto& reply = out.replies[a.index];
    reply.status = a.status;
    reply.latency_ms = a.latency_ms;
    if (a.status != 202) {
      return;
    }
    boost::system::error_code ec;
    auto body = json::parse(a.body, ec);
    if (!ec && body.is_object()) {
      if (const auto* id = body.as_object().if_contains("requestId");
          id != nullptr && id->is_string()) {
        reply.request_id = std::string(id->as_string());
      }
    }
  };
  const auto totals = co_await http::run_load(port, plan.size(), connections, request, record);
  out.failed = totals.failed;
  out.seconds = totals.seconds;
  co_return out;
}

asio::awaitable<std::pair<int, std::string>> http_call(unsigned short port, std::string method,
                                                       std::string target) {
  return http::call(port, std::move(method), std::move(target));
}

}  // namespace coupon_issue
