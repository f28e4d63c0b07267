#pragma once
// The protocol side of the ops endpoint, apart from any socket so unit tests drive it: request
// targets and parameters, access control (bearer token, CSRF token, Host check), rate
// limiting, routing, and the error responses (4xx for every bad request, 500 for a handler
// that failed; the process never goes down for a request).
//
//   ops::router r(ops::policy_for(options));    // server.hpp: the token and a fresh CSRF token
//   r.get("/metrics", [&](const ops::call& c) -> asio::awaitable<ops::response> { ... });
//   ops::response res = co_await r.handle(std::move(req));   // server.hpp does this per request
//
// Access (checked before a handler runs):
// - `public_asset` routes (the dashboard's HTML/JS/CSS, which hold no data) are served to
//   anyone who can connect;
// - every other route needs `Authorization: Bearer <token>` when a token is set (compared in
//   constant time): 401 otherwise;
// - POST routes (every mutating call) also need the header `X-CSRF-Token: <csrf_token>` (GET
//   /api/session hands it to the page; another origin cannot read it): 403 otherwise;
// - with `allowed_hosts` set (the server sets them when it listens on loopback without a token),
//   a request whose Host header is not one of them is refused with 403: a web page on another
//   site cannot reach the endpoint through DNS rebinding.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::ops {

namespace asio = boost::asio;
namespace http = boost::beast::http;

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

/// Thrown by a handler for a request it cannot serve (a missing or invalid parameter): the
/// router answers 400 with the message.
class bad_request : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// True when a and b are equal; the time taken depends only on their lengths.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

/// 32 random bytes (from the OS) as 64 hex digits: CSRF tokens.
std::string random_token();

/// Percent-decodes `s` ('+' is a space when `plus_is_space`); nullopt for a bad escape.
std::optional<std::string> url_decode(std::string_view s, bool plus_is_space = true);

/// `s` with & < > " ' replaced by entities: safe as HTML text and in quoted attributes.
std::string html_escape(std::string_view s);

/// A request target split into its decoded path and parameters.
struct target {
  std::string path;
  std::map<std::string, std::string, std::less<>> params;
};

/// Parses "/path?a=1&b=x%20y"; nullopt for a target that is not origin-form or that has a
/// bad escape. A repeated parameter keeps its last value.
std::optional<target> parse_target(std::string_view text);

/// Parameters of an application/x-www-form-urlencoded body, added to `into` (a body value
/// wins over the query's). False for a bad escape.
bool parse_form(std::string_view body, std::map<std::string, std::string, std::less<>>& into);

/// A token bucket: `rate` requests per second on average, bursts of up to `burst`.
class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;
  /// rate 0: unlimited.
  rate_limiter(double rate, double burst);
  /// Takes one token at `now`; false when the bucket is empty.
  bool try_acquire(clock::time_point now = clock::now()) noexcept;

 private:
  double rate_;
  double burst_;
  double tokens_;
  std::optional<clock::time_point> last_;
};

struct access_policy {
  /// Bearer token every non-public route needs; empty: none.
  std::string token;
  /// The CSRF token POST routes need (X-CSRF-Token); must not be empty.
  std::string csrf_token;
  /// Accepted Host header values ("127.0.0.1:9464"); empty: any.
  std::vector<std::string> allowed_hosts;
};

/// One routed request, as a handler sees it.
struct call {
  const ops::request& req;
  /// Decoded path; parameters from the query and, for a form POST, from the body.
  const ops::target& target;

  /// The parameter `name`; bad_request when it is missing.
  const std::string& param(std::string_view name) const;
  /// The parameter `name`, or `fallback`.
  std::string param_or(std::string_view name, std::string_view fallback) const;
  /// The parameter `name` as an unsigned integer in [0, max], or `fallback` when missing;
  /// bad_request when it is not one.
  std::uint64_t number_or(std::string_view name, std::uint64_t fallback,
                          std::uint64_t max = UINT64_MAX) const;
};

using handler = std::function<asio::awaitable<response>(const call&)>;

/// A response with `status`, a body and its content type; no-store, nosniff and a
/// Content-Security-Policy that allows only the endpoint's own scripts and styles.
response make_response(const request& req, http::status status, std::string body,
                       std::string_view content_type = "text/plain; charset=utf-8");
/// A JSON error body {"error": message} with `status`.
response error_response(const request& req, http::status status, std::string_view message);

class router {
 public:
  explicit router(access_policy policy);

  /// Adds a GET (and HEAD) route for an exact path. `public_asset`: served without the token.
  void get(std::string path, handler h, bool public_asset = false);
  /// Adds a POST route (token and CSRF token required).
  void post(std::string path, handler h);

  /// Serves one request: 400 for an unparsable target or form, 404 for an unknown path, 405
  /// for a known path with another method, 401/403 per the access rules, 400 for a handler's
  /// bad_request, 500 for any other exception of a handler (logged, channel "ops").
  /// HEAD is answered like GET without a body. Never throws except operation_aborted.
  asio::awaitable<response> handle(request req);

  const access_policy& policy() const noexcept { return policy_; }
  /// Replaces access_policy::allowed_hosts (the server sets them once it knows its port).
  void set_allowed_hosts(std::vector<std::string> hosts) {
    policy_.allowed_hosts = std::move(hosts);
  }

 private:
  struct route {
    http::verb method;
    handler run;
    bool public_asset = false;
  };
  std::optional<response> refuse(const request& req, const route& r) const;

  access_policy policy_;
  std::map<std::string, std::vector<route>, std::less<>> routes_;
};

}  // namespace corvo::ops
