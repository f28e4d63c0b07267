#include "load_client.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <corvo/core/task_group.hpp>
#include <optional>

namespace coupon_issue {

namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using asio::ip::tcp;

namespace {

struct load_state {
  const std::vector<issue_call>* plan = nullptr;
  std::size_t next = 0;
  issue_load result;
};

// One keep-alive connection taking calls from the shared counter until none are left;
// reconnects after a failed call.
asio::awaitable<void> load_connection(unsigned short port, load_state* state) {
  auto executor = co_await asio::this_coro::executor;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  while (state->next < state->plan->size()) {
    const auto i = state->next++;
    auto& reply = state->result.replies[i];
    const auto started = std::chrono::steady_clock::now();
    try {
      if (!stream) {
        stream.emplace(executor);
        co_await stream->async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                       asio::use_awaitable);
        stream->socket().set_option(tcp::no_delay(true));
      }
      http::request<http::empty_body> request(http::verb::post, issue_target((*state->plan)[i]),
                                              11);
      request.set(http::field::host, "127.0.0.1");
      request.keep_alive(true);
      stream->expires_after(std::chrono::seconds(60));
      co_await http::async_write(*stream, request, asio::use_awaitable);
      http::response<http::string_body> response;
      co_await http::async_read(*stream, buffer, response, asio::use_awaitable);
      reply.status = static_cast<int>(response.result_int());
      reply.latency_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
              .count();
      if (reply.status == 202) {
        boost::system::error_code ec;
        auto body = json::parse(response.body(), ec);
        if (!ec && body.is_object()) {
          if (const auto* id = body.as_object().if_contains("requestId");
              id != nullptr && id->is_string()) {
            reply.request_id = std::string(id->as_string());
          }
        }
      }
      if (!response.keep_alive()) {
        stream.reset();
        buffer.clear();
      }
    } catch (const boost::system::system_error&) {
      ++state->result.failed;
      stream.reset();
      buffer.clear();
    }
  }
}

}  // namespace

std::string issue_target(const issue_call& call) {
  std::string target = "/api/coupons/" + call.coupon + "/issue";
  if (!call.user.empty()) {
    target += "?userId=" + call.user;
  }
  return target;
}

asio::awaitable<issue_load> fire(unsigned short port, const std::vector<issue_call>& plan,
                                 std::size_t connections) {
  auto executor = co_await asio::this_coro::executor;
  load_state state;
  state.plan = &plan;
  state.result.replies.resize(plan.size());
  const auto started = std::chrono::steady_clock::now();
  corvo::task_group group(executor);
  for (std::size_t c = 0; c < connections; ++c) {
    co_await group.spawn(load_connection(port, &state));
  }
  co_await group.join();
  state.result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  co_return std::move(state.result);
}

asio::awaitable<std::pair<int, std::string>> http_call(unsigned short port, std::string method,
                                                       std::string target) {
  auto executor = co_await asio::this_coro::executor;
  beast::tcp_stream stream(executor);
  co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                asio::use_awaitable);
  http::request<http::empty_body> request(http::string_to_verb(method), target, 11);
  request.set(http::field::host, "127.0.0.1");
  request.keep_alive(false);
  stream.expires_after(std::chrono::seconds(30));
  co_await http::async_write(stream, request, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  co_await http::async_read(stream, buffer, response, asio::use_awaitable);
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return std::make_pair(static_cast<int>(response.result_int()), std::move(response.body()));
}

}  // namespace coupon_issue
