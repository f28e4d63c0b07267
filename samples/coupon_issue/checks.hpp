#pragma once
// The load plan of the demo and the tests, and the checks made afterwards on the database
// itself: every accepted request has exactly one final outcome; per coupon, the outcomes
// are exactly those of deciding the requests one by one in arrival order (so: never more
// coupons than the stock, never a user twice, first come first served); exactly the stock
// was issued.

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <db/database.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "coupon_store.hpp"
#include "load_client.hpp"

namespace coupon_issue {

struct plan_options {
  std::size_t users = 10'000;  ///< distinct users, each asking once
  std::int64_t stock = 100;    ///< coupons in all, split over `coupons`
  std::size_t coupons = 10;    ///< coupons being issued (ids 1..coupons)
  /// Every `duplicate_every`-th user asks a second time (0: nobody).
  std::size_t duplicate_every = 10;
  /// Also requests that fail validation (bad coupon id, bad or missing userId) and business
  /// rules (an inactive coupon, an unknown one): users / 200 of each kind.
  bool invalid = true;
  std::uint64_t seed = 7;
};

struct load_plan {
  std::vector<coupon_definition> coupons;  ///< the active ones and one inactive
  std::vector<issue_call> calls;           ///< shuffled
  std::int64_t stock = 0;                  ///< of the active coupons
};

load_plan make_plan(const plan_options& options);

/// "ID:STOCK[:inactive],…" (the --coupons option).
std::string coupons_text(const std::vector<coupon_definition>& coupons);

struct verdict {
  std::vector<std::pair<bool, std::string>> checks;  ///< (held, what)
  std::map<std::string, std::int64_t> outcomes;      ///< stored requests per outcome
  std::int64_t issued = 0;                           ///< issued_coupon rows
  std::size_t accepted = 0;                          ///< 202 answers
  bool ok() const;
};

/// Checks the database against the plan and the answers (see the file comment).
/// `extra_ids`: request ids that reached the queue without the API (the tests' malformed
/// messages); they must have an outcome too, and are left out of the replay.
asio::awaitable<verdict> verify(corvo::samples::db::database& database, const load_plan& plan,
                                const issue_load& load, std::set<std::string> extra_ids = {});

/// Requests with a stored outcome.
asio::awaitable<std::int64_t> decided_count(corvo::samples::db::database& database);

}  // namespace coupon_issue
