#pragma once
// The coupon issuance rules, as plain code: what a request is, its outcomes, and the issuer
// that decides each request against the coupons' state (stock left, users served, requests
// already decided). No I/O: the processor feeds it requests in arrival order and persists
// what it decides; the same state is rebuilt from the database at start.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace coupon_issue {

enum class outcome {
  success,            ///< a coupon was issued to the user
  validation_failed,  ///< coupon id or user id is not a positive integer
  duplicate_request,  ///< the user already holds this coupon
  out_of_stock,       ///< every coupon was issued
  business_error,     ///< no such coupon, or it is not being issued (inactive)
  system_error,       ///< the queued message itself is malformed (not the user's input)
};

/// "SUCCESS", "VALIDATION_FAILED", "DUPLICATE_REQUEST", "OUT_OF_STOCK", "BUSINESS_ERROR",
/// "SYSTEM_ERROR".
std::string_view to_string(outcome o) noexcept;
/// The inverse of to_string; nullopt for anything else.
std::optional<outcome> outcome_from(std::string_view text) noexcept;
/// Every outcome, in declaration order.
const std::vector<outcome>& all_outcomes();

/// One queued issuance request, as the API enqueues it. `coupon` and `user` are the caller's
/// text, unchecked (the issuer validates them).
struct issue_request {
  std::string id;          ///< unique per request (the API's instance prefix and sequence)
  std::string coupon;      ///< the {id} of the URL
  std::string user;        ///< the userId parameter ("" when absent)
  std::int64_t seq = 0;    ///< the API's enqueue order (arrival order, per API process)
  std::int64_t at_ms = 0;  ///< when the API accepted it (UTC ms)
};

/// The queue message of a request: JSON {"id","coupon","user","seq","at"}.
std::string encode(const issue_request& r);

/// A message taken apart. `request.id` is set when the message has a string "id"; `error`
/// says what else is wrong with it (empty: a well-formed request).
struct decoded {
  issue_request request;
  std::string error;
};
/// Throws std::invalid_argument when `message` is not a JSON object with a string "id" (no
/// request can be named: the message is dead-lettered).
decoded decode(std::string_view message);

/// A decided request, as it is stored.
struct decision {
  issue_request request;
  outcome result = outcome::system_error;
  std::string detail;  ///< why, for the outcomes other than SUCCESS
  /// The coupon's issued count after this decision (SUCCESS only).
  std::int64_t issued_after = 0;
};

/// A coupon as the issuer knows it.
struct coupon_state {
  std::int64_t stock = 0;        ///< coupons to issue in all
  std::int64_t issued = 0;       ///< issued so far (never above stock)
  bool active = true;            ///< being issued now
  std::set<std::int64_t> users;  ///< users holding one
};

/// Decides requests one at a time, in the order given (the arrival order). Every request id
/// is decided once: a request seen again (a redelivery after a crash or a retry) is
/// recognised and gets its first outcome back, changing nothing.
class issuer {
 public:
  /// Adds (or replaces) a coupon, e.g. when loading from the database.
  void put_coupon(std::int64_t id, coupon_state state);
  /// Records a decision made earlier (loading from the database).
  void remember(const std::string& request_id, outcome o);

  struct result {
    decision decided;
    bool redelivered = false;  ///< the request was decided before: `decided` is that outcome
  };
  /// Decides `r` (see the class comment). `malformed`: the message's own error (decode()),
  /// which makes the outcome SYSTEM_ERROR.
  result decide(issue_request r, const std::string& malformed = {});

  const coupon_state* coupon(std::int64_t id) const;
  const std::map<std::int64_t, coupon_state>& coupons() const noexcept { return coupons_; }
  std::size_t decided() const noexcept { return decided_.size(); }

 private:
  std::map<std::int64_t, coupon_state> coupons_;
  std::unordered_map<std::string, outcome> decided_;
};

/// A positive decimal integer of at most 15 digits, else nullopt.
std::optional<std::int64_t> parse_id(std::string_view text) noexcept;

}  // namespace coupon_issue
