#include "checks.hpp"

#include <algorithm>
#include <random>

namespace coupon_issue {

namespace db = corvo::samples::db;

namespace {

std::string text(const db::value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    return *s;
  }
  if (const auto* n = std::get_if<std::int64_t>(&v)) {
    return std::to_string(*n);
  }
  return {};
}

std::int64_t integer(const db::value& v) {
  if (const auto* n = std::get_if<std::int64_t>(&v)) {
    return *n;
  }
  return std::stoll(text(v));
}

}  // namespace

load_plan make_plan(const plan_options& o) {
  load_plan plan;
  const auto n = static_cast<std::int64_t>(o.coupons);
  for (std::int64_t c = 1; c <= n; ++c) {
    coupon_definition d;
    d.id = c;
    d.stock = o.stock / n + (c <= o.stock % n ? 1 : 0);
    plan.coupons.push_back(d);
    plan.stock += d.stock;
  }
  const std::int64_t inactive = n + 1;
  plan.coupons.push_back(coupon_definition{inactive, 10, false});
  std::mt19937_64 random(o.seed);
  for (std::size_t u = 1; u <= o.users; ++u) {
    issue_call call{std::to_string(1 + random() % o.coupons), std::to_string(u)};
    plan.calls.push_back(call);
    if (o.duplicate_every != 0 && u % o.duplicate_every == 0) {
      plan.calls.push_back(call);
    }
  }
  if (o.invalid) {
    for (std::size_t i = 0; i < std::max<std::size_t>(1, o.users / 200); ++i) {
      plan.calls.push_back({"x" + std::to_string(i), "1"});                       // bad coupon id
      plan.calls.push_back({"1", i % 2 == 0 ? "" : "user" + std::to_string(i)});  // bad userId
      plan.calls.push_back({std::to_string(inactive), std::to_string(i + 1)});    // inactive
      plan.calls.push_back({"999999", std::to_string(i + 1)});                    // unknown
    }
  }
  std::shuffle(plan.calls.begin(), plan.calls.end(), random);
  return plan;
}

std::string coupons_text(const std::vector<coupon_definition>& coupons) {
  std::string out;
  for (const auto& c : coupons) {
    out += (out.empty() ? "" : ",") + std::to_string(c.id) + ":" + std::to_string(c.stock) +
           (c.active ? "" : ":inactive");
  }
  return out;
}

bool verdict::ok() const {
  return std::all_of(checks.begin(), checks.end(), [](const auto& c) { return c.first; });
}

asio::awaitable<std::int64_t> decided_count(db::database& database) {
  auto r = co_await database.query("SELECT COUNT(*) FROM coupon_request");
  co_return integer(r.rows.at(0).at(0));
}

asio::awaitable<verdict> verify(db::database& database, const load_plan& plan,
                                const issue_load& load, std::set<std::string> extra_ids) {
  verdict v;
  auto check = [&](bool held, std::string what) { v.checks.emplace_back(held, std::move(what)); };

  std::set<std::string> accepted;
  std::size_t answered = 0;
  for (const auto& reply : load.replies) {
    answered += reply.status != 0;
    if (reply.status == 202 && !reply.request_id.empty()) {
      accepted.insert(reply.request_id);
    }
  }
  v.accepted = accepted.size();
  check(load.failed == 0 && answered == plan.calls.size() && accepted.size() == plan.calls.size(),
        "every request accepted (" + std::to_string(accepted.size()) + " of " +
            std::to_string(plan.calls.size()) + ", " + std::to_string(load.failed) +
            " without answer)");

  // Every accepted request: exactly one outcome (request_id is the primary key: one row).
  auto rows = co_await database.query(
      "SELECT request_id, coupon_id, user_id, seq, outcome FROM coupon_request");
  struct stored {
    std::string id, coupon, user, outcome;
    std::int64_t seq;
  };
  std::vector<stored> requests;
  std::set<std::string> with_outcome;
  for (const auto& r : rows.rows) {
    requests.push_back(
        {text(r.at(0)), text(r.at(1)), text(r.at(2)), text(r.at(4)), integer(r.at(3))});
    with_outcome.insert(requests.back().id);
    ++v.outcomes[requests.back().outcome];
  }
  auto expected = accepted;
  expected.insert(extra_ids.begin(), extra_ids.end());
  std::size_t missing = 0;
  for (const auto& id : expected) {
    missing += !with_outcome.contains(id);
  }
  check(missing == 0 && with_outcome.size() == expected.size(),
        "every request has exactly one final outcome (" + std::to_string(with_outcome.size()) +
            " stored for " + std::to_string(expected.size()) + " requests, " +
            std::to_string(missing) + " missing)");

  // Replay: the requests of each coupon in arrival order through a fresh issuer.
  std::sort(requests.begin(), requests.end(),
            [](const stored& a, const stored& b) { return a.seq < b.seq; });
  issuer replay;
  for (const auto& c : plan.coupons) {
    coupon_state s;
    s.stock = c.stock;
    s.active = c.active;
    replay.put_coupon(c.id, s);
  }
  std::size_t differ = 0;
  std::string first_difference;
  for (const auto& r : requests) {
    if (extra_ids.contains(r.id)) {
      continue;
    }
    issue_request q;
    q.id = r.id;
    q.coupon = r.coupon;
    q.user = r.user;
    q.seq = r.seq;
    const auto want = replay.decide(q).decided.result;
    if (to_string(want) != r.outcome) {
      if (differ++ == 0) {
        first_difference = r.id + " (coupon " + r.coupon + ", user " + r.user + ", seq " +
                           std::to_string(r.seq) + "): " + r.outcome + ", in order " +
                           std::string(to_string(want));
      }
    }
  }
  check(differ == 0, "every outcome is the one of issuing in arrival order per coupon (" +
                         std::to_string(differ) + " differ" +
                         (differ ? ", first: " + first_difference : std::string()) + ")");

  // The coupons themselves.
  auto issued =
      co_await database.query("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM issued_coupon");
  v.issued = integer(issued.rows.at(0).at(0));
  auto counters = co_await database.query("SELECT id, stock, issued FROM coupon");
  std::int64_t counted = 0;
  bool within_stock = true;
  for (const auto& r : counters.rows) {
    counted += integer(r.at(2));
    within_stock = within_stock && integer(r.at(2)) <= integer(r.at(1)) && integer(r.at(2)) >= 0;
  }
  check(v.issued == plan.stock && counted == plan.stock && within_stock &&
            v.outcomes["SUCCESS"] == plan.stock,
        "exactly the stock issued: " + std::to_string(v.issued) + " coupons for a stock of " +
            std::to_string(plan.stock) + " (coupon counters " + std::to_string(counted) +
            ", SUCCESS outcomes " + std::to_string(v.outcomes["SUCCESS"]) + ")");
  auto holders = co_await database.query(
      "SELECT COUNT(*) FROM (SELECT coupon_id, user_id FROM coupon_request WHERE outcome = "
      "'SUCCESS' GROUP BY coupon_id, user_id HAVING COUNT(*) > 1) AS twice");
  const auto twice = integer(holders.rows.at(0).at(0));
  check(twice == 0 && integer(issued.rows.at(0).at(1)) == v.issued,
        "no user got a coupon twice (" + std::to_string(twice) + " did)");
  co_return v;
}

}  // namespace coupon_issue
