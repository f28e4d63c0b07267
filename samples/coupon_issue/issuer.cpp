#include "issuer.hpp"

#include <boost/json.hpp>
#include <stdexcept>

namespace coupon_issue {

namespace json = boost::json;

std::string_view to_string(outcome o) noexcept {
  switch (o) {
    case outcome::success:
      return "SUCCESS";
    case outcome::validation_failed:
      return "VALIDATION_FAILED";
    case outcome::duplicate_request:
      return "DUPLICATE_REQUEST";
    case outcome::out_of_stock:
      return "OUT_OF_STOCK";
    case outcome::business_error:
      return "BUSINESS_ERROR";
    case outcome::system_error:
      return "SYSTEM_ERROR";
  }
  return "SYSTEM_ERROR";
}

const std::vector<outcome>& all_outcomes() {
  static const std::vector<outcome> all = {outcome::success,           outcome::validation_failed,
                                           outcome::duplicate_request, outcome::out_of_stock,
                                           outcome::business_error,    outcome::system_error};
  return all;
}

std::optional<outcome> outcome_from(std::string_view text) noexcept {
  for (auto o : all_outcomes()) {
    if (to_string(o) == text) {
      return o;
    }
  }
  return std::nullopt;
}

std::string encode(const issue_request& r) {
  json::object o{
      {"id", r.id}, {"coupon", r.coupon}, {"user", r.user}, {"seq", r.seq}, {"at", r.at_ms}};
  return json::serialize(o);
}

decoded decode(std::string_view message) {
  boost::system::error_code ec;
  auto value = json::parse(message, ec);
  if (ec || !value.is_object()) {
    throw std::invalid_argument("not a JSON object");
  }
  const auto& o = value.as_object();
  const auto* id = o.if_contains("id");
  if (id == nullptr || !id->is_string() || id->as_string().empty()) {
    throw std::invalid_argument("no request id");
  }
  decoded d;
  d.request.id = std::string(id->as_string());
  auto text = [&](std::string_view key, std::string& out) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_string()) {
      d.error = "field \"" + std::string(key) + "\" is not a string";
      return;
    }
    out = std::string(v->as_string());
  };
  auto number = [&](std::string_view key, std::int64_t& out) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_int64()) {
      d.error = "field \"" + std::string(key) + "\" is not an integer";
      return;
    }
    out = v->as_int64();
  };
  text("coupon", d.request.coupon);
  text("user", d.request.user);
  number("seq", d.request.seq);
  number("at", d.request.at_ms);
  return d;
}

std::optional<std::int64_t> parse_id(std::string_view text) noexcept {
  if (text.empty() || text.size() > 15 || text[0] == '0') {
    return std::nullopt;
  }
  std::int64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    n = n * 10 + (c - '0');
  }
  return n;
}

void issuer::put_coupon(std::int64_t id, coupon_state state) {
  coupons_[id] = std::move(state);
}

void issuer::remember(const std::string& request_id, outcome o) {
  decided_.emplace(request_id, o);
}

const coupon_state* issuer::coupon(std::int64_t id) const {
  const auto it = coupons_.find(id);
  return it == coupons_.end() ? nullptr : &it->second;
}

issuer::result issuer::decide(issue_request r, const std::string& malformed) {
  result out;
  if (const auto seen = decided_.find(r.id); seen != decided_.end()) {
    out.redelivered = true;
    out.decided.request = std::move(r);
    out.decided.result = seen->second;
    return out;
  }
  auto& d = out.decided;
  d.request = std::move(r);
  const auto coupon_id = parse_id(d.request.coupon);
  const auto user_id = parse_id(d.request.user);
  if (!malformed.empty()) {
    d.result = outcome::system_error;
    d.detail = "malformed request message: " + malformed;
  } else if (!coupon_id || !user_id) {
    d.result = outcome::validation_failed;
    d.detail =
        !coupon_id ? "coupon id must be a positive integer" : "userId must be a positive integer";
  } else if (auto it = coupons_.find(*coupon_id); it == coupons_.end()) {
    d.result = outcome::business_error;
    d.detail = "no such coupon";
  } else if (auto& c = it->second; !c.active) {
    d.result = outcome::business_error;
    d.detail = "coupon is not being issued";
  } else if (c.users.contains(*user_id)) {
    d.result = outcome::duplicate_request;
    d.detail = "user already holds this coupon";
  } else if (c.issued >= c.stock) {
    d.result = outcome::out_of_stock;
    d.detail = "no coupon left";
  } else {
    ++c.issued;
    c.users.insert(*user_id);
    d.result = outcome::success;
    d.issued_after = c.issued;
  }
  decided_.emplace(d.request.id, d.result);
  return out;
}

}  // namespace coupon_issue
