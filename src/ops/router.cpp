#include <openssl/rand.h>

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/system/system_error.hpp>
#include <charconv>
#include <corvo/core/log.hpp>
#include <corvo/ops/router.hpp>
#include <exception>

namespace corvo::ops {

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  // Compares every byte of the longer one, so neither the position of the first difference
  // nor (beyond the length) the content shows in the time taken.
  std::size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::string random_token() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    throw std::runtime_error("ops: no random bytes for a token");
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool parse_pairs(std::string_view text, std::map<std::string, std::string, std::less<>>& into) {
  while (!text.empty()) {
    std::size_t amp = text.find('&');
    std::string_view pair = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    std::size_t eq = pair.find('=');
    auto key = url_decode(pair.substr(0, eq));
    auto value =
        url_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    if (!key || !value) {
      return false;
    }
    into[*key] = std::move(*value);
  }
  return true;
}

}  // namespace

std::optional<std::string> url_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) {
        return std::nullopt;
      }
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::optional<target> parse_target(std::string_view text) {
  if (text.empty() || text.front() != '/') {
    return std::nullopt;
  }
  std::size_t q = text.find('?');
  auto path = url_decode(text.substr(0, q), false);
  if (!path) {
    return std::nullopt;
  }
  target t;
  t.path = std::move(*path);
  if (q != std::string_view::npos && !parse_pairs(text.substr(q + 1), t.params)) {
    return std::nullopt;
  }
  return t;
}

bool parse_form(std::string_view body, std::map<std::string, std::string, std::less<>>& into) {
  return parse_pairs(body, into);
}

rate_limiter::rate_limiter(double rate, double burst)
    : rate_(rate), burst_(std::max(burst, 1.0)), tokens_(burst_) {}

bool rate_limiter::try_acquire(clock::time_point now) noexcept {
  if (rate_ <= 0) {
    return true;
  }
  if (last_) {
    double elapsed = std::chrono::duration<double>(now - *last_).count();
    if (elapsed > 0) {
      tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    }
  }
  last_ = now;
  if (tokens_ < 1) {
    return false;
  }
  tokens_ -= 1;
  return true;
}

const std::string& call::param(std::string_view name) const {
  auto it = target.params.find(name);
  if (it == target.params.end()) {
    throw bad_request("missing parameter '" + std::string(name) + "'");
  }
  return it->second;
}

std::string call::param_or(std::string_view name, std::string_view fallback) const {
  auto it = target.params.find(name);
  return it == target.params.end() ? std::string(fallback) : it->second;
}

std::uint64_t call::number_or(std::string_view name, std::uint64_t fallback,
                              std::uint64_t max) const {
  auto it = target.params.find(name);
  if (it == target.params.end() || it->second.empty()) {
    return fallback;
  }
  const std::string& s = it->second;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v > max) {
    throw bad_request("parameter '" + std::string(name) + "' must be an integer from 0 to " +
                      std::to_string(max));
  }
  return v;
}

response make_response(const request& req, http::status status, std::string body,
                       std::string_view content_type) {
  response res{status, req.version()};
  res.set(http::field::server, "corvo-ops");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.set("Referrer-Policy", "no-referrer");
  res.set("Content-Security-Policy",
          "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

response error_response(const request& req, http::status status, std::string_view message) {
  boost::json::object o;
  o["error"] = message;
  return make_response(req, status, boost::json::serialize(o), "application/json");
}

router::router(access_policy policy) : policy_(std::move(policy)) {
  if (policy_.csrf_token.empty()) {
    throw std::invalid_argument("ops: the CSRF token must not be empty");
  }
}

void router::get(std::string path, handler h, bool public_asset) {
  routes_[std::move(path)].push_back(route{http::verb::get, std::move(h), public_asset});
}

void router::post(std::string path, handler h) {
  routes_[std::move(path)].push_back(route{http::verb::post, std::move(h), false});
}

std::optional<response> router::refuse(const request& req, const route& r) const {
  if (!policy_.allowed_hosts.empty()) {
    auto host = req[http::field::host];
    bool known = std::any_of(policy_.allowed_hosts.begin(), policy_.allowed_hosts.end(),
                             [&](const std::string& h) { return h == host; });
    if (!known) {
      return error_response(req, http::status::forbidden, "unknown Host header");
    }
  }
  if (r.public_asset) {
    return std::nullopt;
  }
  if (!policy_.token.empty()) {
    std::string_view auth = req[http::field::authorization];
    constexpr std::string_view scheme = "Bearer ";
    bool ok = auth.size() > scheme.size() && auth.substr(0, scheme.size()) == scheme &&
              constant_time_equal(auth.substr(scheme.size()), policy_.token);
    if (!ok) {
      auto res = error_response(req, http::status::unauthorized, "a bearer token is required");
      res.set(http::field::www_authenticate, "Bearer realm=\"corvo\"");
      return res;
    }
  }
  if (r.method == http::verb::post &&
      !constant_time_equal(req["X-CSRF-Token"], policy_.csrf_token)) {
    return error_response(req, http::status::forbidden, "missing or wrong X-CSRF-Token header");
  }
  return std::nullopt;
}

asio::awaitable<response> router::handle(request req) {
  auto t = parse_target(req.target());
  if (!t) {
    co_return error_response(req, http::status::bad_request, "malformed request target");
  }
  auto found = routes_.find(t->path);
  if (found == routes_.end()) {
    co_return error_response(req, http::status::not_found, "no such path");
  }
  bool head = req.method() == http::verb::head;
  http::verb wanted = head ? http::verb::get : req.method();
  const route* match = nullptr;
  std::string allow;
  for (const route& r : found->second) {
    if (r.method == wanted) {
      match = &r;
    }
    allow += allow.empty() ? "" : ", ";
    allow += std::string(http::to_string(r.method));
  }
  if (match == nullptr) {
    auto res = error_response(req, http::status::method_not_allowed, "method not allowed");
    res.set(http::field::allow, allow);
    co_return res;
  }
  if (auto refused = refuse(req, *match)) {
    co_return std::move(*refused);
  }
  if (req.method() == http::verb::post) {
    auto type = req[http::field::content_type];
    if (type.starts_with("application/x-www-form-urlencoded") &&
        !parse_form(req.body(), t->params)) {
      co_return error_response(req, http::status::bad_request, "malformed form body");
    }
  }
  std::optional<response> res;
  std::string failure;
  bool client_error = false;
  try {
    call c{req, *t};
    res = co_await match->run(c);
  } catch (const bad_request& e) {
    failure = e.what();
    client_error = true;
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted) {
      throw;
    }
    failure = e.what();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!res) {
    if (client_error) {
      co_return error_response(req, http::status::bad_request, failure);
    }
    CORVO_LOG(error, "ops") << req.method_string() << ' ' << t->path << " failed: " << failure;
    co_return error_response(req, http::status::internal_server_error, failure);
  }
  if (head) {
    res->body().clear();
    res->prepare_payload();  // Content-Length 0 for HEAD is acceptable; the body is dropped
  }
  co_return std::move(*res);
}

}  // namespace corvo::ops
