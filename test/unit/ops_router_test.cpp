// The protocol side of the ops endpoint without sockets: targets, access rules, routing,
// error statuses, rate limiting, configuration (include/corvo/ops/router.hpp, server.hpp).
#include <boost/test/unit_test.hpp>
#include <corvo/core/config.hpp>
#include <corvo/ops/router.hpp>
#include <corvo/ops/server.hpp>
#include <support/run_coroutine.hpp>

namespace asio = boost::asio;
namespace ops = corvo::ops;
namespace http = boost::beast::http;
using namespace std::chrono_literals;

namespace {

ops::request make(http::verb method, std::string target, std::string host = "127.0.0.1:9464") {
  ops::request req{method, target, 11};
  req.set(http::field::host, host);
  return req;
}

ops::response serve(ops::router& r, ops::request req) {
  asio::io_context io;
  return corvo::test::run(io, r.handle(std::move(req)));
}

asio::awaitable<ops::response> echo(const ops::call& c) {
  co_return ops::make_response(c.req, http::status::ok, "x=" + c.param_or("x", "-"));
}

asio::awaitable<ops::response> needs_number(const ops::call& c) {
  co_return ops::make_response(c.req, http::status::ok, std::to_string(c.number_or("n", 7, 100)));
}

asio::awaitable<ops::response> broken(const ops::call&) {
  throw std::runtime_error("boom");
  co_return ops::response{};
}

ops::router make_router(std::string token) {
  ops::router r(
      ops::access_policy{.token = std::move(token), .csrf_token = "csrf-1", .allowed_hosts = {}});
  r.get("/echo", echo);
  r.get("/page", echo, true);
  r.get("/number", needs_number);
  r.get("/broken", broken);
  r.post("/mutate", echo);
  return r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_router)

BOOST_AUTO_TEST_CASE(parses_targets_and_forms) {
  auto t = ops::parse_target("/a%20b?x=1&y=h%C3%A9+llo&x=2&flag");
  BOOST_REQUIRE(t);
  BOOST_TEST(t->path == "/a b");
  BOOST_TEST(t->params.at("x") == "2");
  BOOST_TEST(t->params.at("y") == "h\xC3\xA9 llo");
  BOOST_TEST(t->params.at("flag") == "");
  BOOST_TEST(!ops::parse_target("http://host/x"));
  BOOST_TEST(!ops::parse_target("/x?a=%zz"));
  BOOST_TEST(!ops::parse_target("/x?a=%4"));
  BOOST_TEST(!ops::parse_target(""));
  std::map<std::string, std::string, std::less<>> form;
  BOOST_TEST(ops::parse_form("id=a%26b&ns=demo", form));
  BOOST_TEST(form.at("id") == "a&b");
  BOOST_TEST(!ops::parse_form("id=%", form));
}

BOOST_AUTO_TEST_CASE(escapes_html_and_compares_in_constant_time) {
  BOOST_TEST(ops::html_escape("<script>alert('x')</script>&\"") ==
             "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;");
  BOOST_TEST(ops::constant_time_equal("secret", "secret"));
  BOOST_TEST(!ops::constant_time_equal("secret", "secreT"));
  BOOST_TEST(!ops::constant_time_equal("secret", "secret2"));
  BOOST_TEST(!ops::constant_time_equal("", "x"));
  auto a = ops::random_token(), b = ops::random_token();
  BOOST_TEST(a.size() == 64u);
  BOOST_TEST(a != b);
}

BOOST_AUTO_TEST_CASE(routes_and_answers_bad_requests_with_4xx) {
  auto r = make_router("");
  auto ok = serve(r, make(http::verb::get, "/echo?x=%3Cb%3E"));
  BOOST_TEST(ok.result_int() == 200);
  BOOST_TEST(ok.body() == "x=<b>");
  BOOST_TEST(ok["X-Content-Type-Options"] == "nosniff");
  BOOST_TEST(ok["Content-Security-Policy"].find("script-src 'self'") != std::string::npos);
  BOOST_TEST(serve(r, make(http::verb::get, "/nowhere")).result_int() == 404);
  auto wrong_method = serve(r, make(http::verb::delete_, "/echo"));
  BOOST_TEST(wrong_method.result_int() == 405);
  BOOST_TEST(wrong_method[http::field::allow] == "GET");
  BOOST_TEST(serve(r, make(http::verb::get, "/echo?x=%G1")).result_int() == 400);
  BOOST_TEST(serve(r, make(http::verb::get, "/number?n=5")).body() == "5");
  BOOST_TEST(serve(r, make(http::verb::get, "/number")).body() == "7");
  BOOST_TEST(serve(r, make(http::verb::get, "/number?n=101")).result_int() == 400);
  BOOST_TEST(serve(r, make(http::verb::get, "/number?n=-1")).result_int() == 400);
  BOOST_TEST(serve(r, make(http::verb::get, "/number?n=1x")).result_int() == 400);
  auto failed = serve(r, make(http::verb::get, "/broken"));
  BOOST_TEST(failed.result_int() == 500);
  BOOST_TEST(failed.body() == R"({"error":"boom"})");
  auto head = serve(r, make(http::verb::head, "/echo?x=1"));
  BOOST_TEST(head.result_int() == 200);
  BOOST_TEST(head.body().empty());
}

BOOST_AUTO_TEST_CASE(requires_the_bearer_token_except_for_public_assets) {
  auto r = make_router("s3cret");
  auto none = serve(r, make(http::verb::get, "/echo"));
  BOOST_TEST(none.result_int() == 401);
  BOOST_TEST(none[http::field::www_authenticate] == "Bearer realm=\"corvo\"");
  auto req = make(http::verb::get, "/echo");
  req.set(http::field::authorization, "Bearer s3cre");
  BOOST_TEST(serve(r, req).result_int() == 401);
  req.set(http::field::authorization, "Basic s3cret");
  BOOST_TEST(serve(r, req).result_int() == 401);
  req.set(http::field::authorization, "Bearer s3cret");
  BOOST_TEST(serve(r, req).result_int() == 200);
  BOOST_TEST(serve(r, make(http::verb::get, "/page")).result_int() == 200);
}

BOOST_AUTO_TEST_CASE(post_needs_the_csrf_token_and_reads_a_form_body) {
  auto r = make_router("");
  auto req = make(http::verb::post, "/mutate");
  req.set(http::field::content_type, "application/x-www-form-urlencoded");
  req.body() = "x=from+body";
  req.prepare_payload();
  BOOST_TEST(serve(r, req).result_int() == 403);
  req.set("X-CSRF-Token", "csrf-2");
  BOOST_TEST(serve(r, req).result_int() == 403);
  req.set("X-CSRF-Token", "csrf-1");
  auto ok = serve(r, req);
  BOOST_TEST(ok.result_int() == 200);
  BOOST_TEST(ok.body() == "x=from body");
  req.body() = "x=%";
  req.prepare_payload();
  BOOST_TEST(serve(r, req).result_int() == 400);
  BOOST_TEST(serve(r, make(http::verb::get, "/mutate")).result_int() == 405);
}

BOOST_AUTO_TEST_CASE(refuses_unknown_host_names_when_restricted) {
  auto r = make_router("");
  r.set_allowed_hosts({"127.0.0.1:9464", "localhost:9464"});
  BOOST_TEST(serve(r, make(http::verb::get, "/page", "localhost:9464")).result_int() == 200);
  BOOST_TEST(serve(r, make(http::verb::get, "/page", "evil.example:9464")).result_int() == 403);
  BOOST_TEST(serve(r, make(http::verb::get, "/echo", "")).result_int() == 403);
}

BOOST_AUTO_TEST_CASE(rate_limiter_allows_the_burst_then_the_rate) {
  ops::rate_limiter limiter(10, 3);  // 10/s, bursts of 3
  auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  BOOST_TEST(limiter.try_acquire(t0));
  BOOST_TEST(limiter.try_acquire(t0));
  BOOST_TEST(limiter.try_acquire(t0));
  BOOST_TEST(!limiter.try_acquire(t0));
  BOOST_TEST(!limiter.try_acquire(t0 + 50ms));  // half a token
  BOOST_TEST(limiter.try_acquire(t0 + 100ms));  // one token back (the half above included)
  BOOST_TEST(!limiter.try_acquire(t0 + 100ms));
  BOOST_TEST(limiter.try_acquire(t0 + 10s));
  ops::rate_limiter unlimited(0, 0);
  for (int i = 0; i < 1000; ++i) {
    BOOST_REQUIRE(unlimited.try_acquire(t0));
  }
}

BOOST_AUTO_TEST_CASE(reads_the_ops_section) {
  auto none = ops::server_options::from(corvo::config::from_string(R"({"redis":{}})"));
  BOOST_TEST(!none.has_value());
  auto cfg = corvo::config::from_string(
      R"({"ops":{"listen":"127.0.0.1:0","rate_limit":5,"idle_timeout":"2s","max_request_bytes":100}})");
  auto o = ops::server_options::from(cfg);
  BOOST_REQUIRE(o);
  BOOST_TEST(o->listen.port() == 0);
  BOOST_TEST(o->rate_limit == 5);
  BOOST_TEST(o->idle_timeout.count() == 2000);
  BOOST_TEST(o->max_request_bytes == 100u);
  auto v6 =
      ops::server_options::from(corvo::config::from_string(R"({"ops":{"listen":"[::1]:9464"}})"));
  BOOST_TEST(v6->listen.address().is_loopback());
  BOOST_CHECK_THROW(
      ops::server_options::from(corvo::config::from_string(R"({"ops":{"listen":"0.0.0.0:9464"}})")),
      corvo::config_error);
  auto with_token = ops::server_options::from(
      corvo::config::from_string(R"({"ops":{"listen":"0.0.0.0:9464","token":"t"}})"));
  BOOST_TEST(with_token->token == "t");
  BOOST_CHECK_THROW(ops::server_options::from(
                        corvo::config::from_string(R"({"ops":{"listen":"localhost:9464"}})")),
                    corvo::config_error);
  BOOST_CHECK_THROW(ops::server_options::from(
                        corvo::config::from_string(R"({"ops":{"listen":"127.0.0.1:99999"}})")),
                    corvo::config_error);
  BOOST_CHECK_THROW(ops::server_options::from(corvo::config::from_string(
                        R"({"ops":{"listen":"127.0.0.1:1","tokn":"x"}})")),
                    corvo::config_error);
  asio::io_context io;
  ops::server_options open_options;
  open_options.listen = {asio::ip::make_address("0.0.0.0"), 0};
  ops::router r(ops::policy_for(open_options));
  BOOST_CHECK_THROW(ops::server(io.get_executor(), open_options, r), std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()
