#pragma once
// The coupons' tables and every statement the sample makes on them.
//
//   coupon          (id PK, stock, issued, active)      CHECK 0 <= issued <= stock
//   coupon_request  (request_id PK, coupon_id, user_id, seq, outcome, detail, decided_ms)
//   issued_coupon   (coupon_id, user_id) PK, request_id
//
// A processed batch is one transaction (persist()): the requests' outcomes, the coupons
// issued, and the coupons' new issued counts; the constraints are the last line of defence
// (a second coupon for a user, or issuing past the stock, fails the whole transaction).

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <db/database.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "issuer.hpp"

namespace coupon_issue {

namespace asio = boost::asio;
namespace db = corvo::samples::db;

/// A coupon to create at start when it does not exist ("ID:STOCK" or "ID:STOCK:inactive").
struct coupon_definition {
  std::int64_t id = 0;
  std::int64_t stock = 0;
  bool active = true;
};
/// Parses a comma-separated list of definitions; throws std::invalid_argument.
std::vector<coupon_definition> parse_coupons(std::string_view list);

/// A request's row (status API).
struct request_status {
  std::string request_id, coupon_id, user_id, outcome, detail;
  std::int64_t seq = 0;
};

class coupon_store {
 public:
  explicit coupon_store(db::database& database) : db_(database) {}

  /// Creates the tables if needed and the coupons of `coupons` that do not exist yet.
  asio::awaitable<void> create_schema(std::vector<coupon_definition> coupons);

  /// Loads everything the issuer needs: coupons, holders, decided request ids.
  asio::awaitable<void> load(issuer& into);

  /// Stores the decisions of one batch in one transaction (see the file comment).
  /// Decisions already stored (same request id) are skipped. Throws db::database_error.
  asio::awaitable<void> persist(const std::vector<decision>& batch);

  /// The stored row of a request, if it was decided.
  asio::awaitable<std::optional<request_status>> status(std::string request_id);

  /// Requests stored per outcome (all coupons).
  asio::awaitable<std::map<std::string, std::int64_t>> outcome_counts();

  /// A coupon's row: stock, issued, active; nullopt if unknown.
  asio::awaitable<std::optional<coupon_definition>> coupon(std::int64_t id, std::int64_t* issued);

 private:
  db::database& db_;
};

}  // namespace coupon_issue
