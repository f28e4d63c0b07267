#include "load_client.hpp"

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <corvo/core/task_group.hpp>

#include "access_log.hpp"
#include "event_store.hpp"

namespace access_events {

namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct load_state {
  std::uint64_t next = 0;
  std::uint64_t end = 0;
  load_result result;
};

// One keep-alive connection taking request numbers from the shared counter until none are
// left; reconnects once per failed request.
asio::awaitable<void> load_connection(unsigned short port, load_state* state) {
  auto executor = co_await asio::this_coro::executor;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  while (state->next < state->end) {
    const auto i = state->next++;
    const auto target = load_path(i);
    const auto started = std::chrono::steady_clock::now();
    try {
      if (!stream) {
        stream.emplace(executor);
        co_await stream->async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                       asio::use_awaitable);
        stream->socket().set_option(tcp::no_delay(true));
      }
      http::request<http::empty_body> request(http::verb::get, target, 11);
      request.set(http::field::host, "127.0.0.1");
      request.keep_alive(true);
      stream->expires_after(std::chrono::seconds(30));
      co_await http::async_write(*stream, request, asio::use_awaitable);
      http::response<http::string_body> response;
      co_await http::async_read(*stream, buffer, response, asio::use_awaitable);
      ++state->result.sent;
      ++state->result.per_day[utc_day(now_ms())][classify(target)];
      state->result.latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
              .count());
    } catch (const boost::system::system_error&) {
      ++state->result.failed;
      stream.reset();
      buffer.clear();
    }
  }
}

}  // namespace

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
  auto executor = co_await asio::this_coro::executor;
  load_state state;
  state.next = first_index;
  state.end = first_index + requests;
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

asio::awaitable<std::pair<int, std::string>> http_get(unsigned short port, std::string target) {
  auto executor = co_await asio::this_coro::executor;
  beast::tcp_stream stream(executor);
  co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                asio::use_awaitable);
  http::request<http::empty_body> request(http::verb::get, target, 11);
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

double percentile(std::vector<double> values, double p) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  const auto at = static_cast<std::size_t>(p / 100.0 * static_cast<double>(values.size() - 1));
  return values[at];
}

}  // namespace access_events
