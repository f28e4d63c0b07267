#include "load.hpp"

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <corvo/core/task_group.hpp>
#include <optional>
#include <stdexcept>

namespace corvo::samples::http {

namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;

namespace {

struct load_state {
  std::size_t next = 0;
  std::size_t count = 0;
  std::function<request_line(std::size_t)> request;
  std::function<void(answer&)> on_answer;
  load_totals totals;
};

bhttp::verb verb_of(const std::string& method) {
  const auto v = bhttp::string_to_verb(method);
  if (v == bhttp::verb::unknown) {
    throw std::invalid_argument("http load: unknown method '" + method + "'");
  }
  return v;
}

tcp::endpoint loopback(unsigned short port) {
  return {asio::ip::make_address("127.0.0.1"), port};
}

// One keep-alive connection taking request numbers until none are left.
asio::awaitable<void> load_connection(unsigned short port, load_state* state) {
  auto executor = co_await asio::this_coro::executor;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  while (state->next < state->count) {
    answer a;
    a.index = state->next++;
    const auto line = state->request(a.index);
    bhttp::request<bhttp::empty_body> request(verb_of(line.method), line.target, 11);
    request.set(bhttp::field::host, "127.0.0.1");
    request.keep_alive(true);
    const auto started = std::chrono::steady_clock::now();
    bool keep = true;
    try {
      if (!stream) {
        stream.emplace(executor);
        co_await stream->async_connect(loopback(port), asio::use_awaitable);
        stream->socket().set_option(tcp::no_delay(true));
      }
      stream->expires_after(std::chrono::seconds(60));
      co_await bhttp::async_write(*stream, request, asio::use_awaitable);
      bhttp::response<bhttp::string_body> response;
      co_await bhttp::async_read(*stream, buffer, response, asio::use_awaitable);
      a.status = static_cast<int>(response.result_int());
      a.body = std::move(response.body());
      a.latency_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
              .count();
      keep = response.keep_alive();
    } catch (const boost::system::system_error&) {
      ++state->totals.failed;
      stream.reset();
      buffer.clear();
      continue;
    }
    if (!keep) {
      stream.reset();
      buffer.clear();
    }
    ++state->totals.answered;
    state->on_answer(a);
  }
}

}  // namespace

asio::awaitable<load_totals> run_load(unsigned short port, std::size_t count,
                                      std::size_t connections,
                                      std::function<request_line(std::size_t)> request,
                                      std::function<void(answer&)> on_answer) {
  auto executor = co_await asio::this_coro::executor;
  load_state state;
  state.count = count;
  state.request = std::move(request);
  state.on_answer = std::move(on_answer);
  const auto started = std::chrono::steady_clock::now();
  corvo::task_group group(executor);
  for (std::size_t c = 0; c < connections; ++c) {
    co_await group.spawn(load_connection(port, &state));
  }
  co_await group.join();
  state.totals.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  co_return state.totals;
}

asio::awaitable<std::pair<int, std::string>> call(unsigned short port, std::string method,
                                                  std::string target) {
  auto executor = co_await asio::this_coro::executor;
  beast::tcp_stream stream(executor);
  stream.expires_after(std::chrono::seconds(30));
  co_await stream.async_connect(loopback(port), asio::use_awaitable);
  bhttp::request<bhttp::empty_body> request(verb_of(method), target, 11);
  request.set(bhttp::field::host, "127.0.0.1");
  request.keep_alive(false);
  co_await bhttp::async_write(stream, request, asio::use_awaitable);
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> response;
  co_await bhttp::async_read(stream, buffer, response, asio::use_awaitable);
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

}  // namespace corvo::samples::http
