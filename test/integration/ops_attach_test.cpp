// ops::attach: one configuration key turns the endpoint on in a health::app. With
// `ops.listen` set, the app serves /metrics (with the health series of its monitor),
// /health/ready and the dashboard page while it runs; without it, attach() returns nullptr
// and nothing listens; an unknown key in `ops` is refused.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/health/app.hpp>
#include <corvo/ops/attach.hpp>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace health = corvo::health;
namespace ops = corvo::ops;

namespace {

struct answer {
  unsigned status = 0;
  std::string body;
};

asio::awaitable<answer> get(unsigned short port, std::string target) {
  auto ex = co_await asio::this_coro::executor;
  beast::tcp_stream stream(ex);
  stream.expires_after(std::chrono::seconds(5));
  const asio::ip::tcp::endpoint to(asio::ip::make_address("127.0.0.1"), port);
  co_await stream.async_connect(to, asio::use_awaitable);
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  co_await http::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  co_await http::async_read(stream, buffer, res, asio::use_awaitable);
  co_return answer{res.result_int(), res.body()};
}

struct seen {
  answer metrics, ready, page;
};

// A component that asks the endpoint, then stops the app.
asio::awaitable<void> ask(health::app* app, unsigned short port, seen* out) {
  out->metrics = co_await get(port, "/metrics");
  out->ready = co_await get(port, "/health/ready");
  out->page = co_await get(port, "/");
  app->request_stop();
  auto ex = co_await asio::this_coro::executor;  // (GCC 12: not inside a constructor call)
  asio::steady_timer wait(ex, std::chrono::hours(1));
  co_await wait.async_wait(asio::use_awaitable);
}

health::app_options quiet_app() {
  health::app_options o;
  o.stop_signals.clear();
  o.probes.interval = std::chrono::milliseconds(50);
  return o;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_attach)

BOOST_AUTO_TEST_CASE(ops_listen_turns_the_endpoint_on_in_the_app) {
  const auto cfg = corvo::config::from_string(R"({"ops": {"listen": "127.0.0.1:0"}})");
  health::app app(quiet_app());
  auto store = app.add_dependency(
      "store", health::probe_from([]() -> asio::awaitable<bool> { co_return true; }));
  auto endpoint = ops::attach(app, cfg);
  BOOST_REQUIRE(endpoint != nullptr);
  const auto port = endpoint->local_endpoint().port();
  BOOST_TEST(port != 0);
  seen got;
  app.add_component({"asker", [&] { return ask(&app, port, &got); }}, {store});
  app.run();
  BOOST_TEST(got.metrics.status == 200u);
  BOOST_TEST(
      got.metrics.body.find("corvo_health_up{dependency=\"store\"} 1\n") != std::string::npos,
      got.metrics.body);
  BOOST_TEST(got.ready.status == 200u);
  BOOST_TEST(got.page.status == 200u);
  BOOST_TEST(got.page.body.find("<html") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(without_ops_listen_nothing_is_attached_and_unknown_keys_are_refused) {
  health::app app(quiet_app());
  BOOST_TEST(ops::attach(app, corvo::config::from_string(R"({"redis": {}})")) == nullptr);
  BOOST_CHECK_THROW(ops::attach(app, corvo::config::from_string(R"({"ops": {"listen": "127.0.0.1:0",
                                                               "tokn": "x"}})")),
                    corvo::config_error);
  BOOST_CHECK_THROW(
      ops::attach(app, corvo::config::from_string(R"({"ops": {"listen": "0.0.0.0:0"}})")),
      corvo::config_error);
}

BOOST_AUTO_TEST_SUITE_END()
