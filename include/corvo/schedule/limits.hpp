#pragma once
// Global rate and concurrency limits per task type (`scheduler.types.<type>.rate` and
// `.concurrency`), enforced by the store's claim across every process sharing a namespace.
//
// A start needs a permit of its type's limit. A concurrency permit is held from the claim to
// the ack or nack of that run, and at most until the run's lease deadline (renewals extend
// it), so a dead worker's permit frees when its lease runs out. A rate permit is an entry in
// a log of starts: at most `starts` claims of the type in any window of length `per` (a
// sliding window, exact). A due task of a limited type that finds no permit is held back:
// it stays scheduled and due (get, browse, stats and export show it), its attempts are not
// counted, and a later claim takes it as soon as a permit frees. The claim reports when that
// is (claim_result::permit_at), so the dispatcher sleeps until then; a released concurrency
// permit wakes a shard that holds tasks of the type at once.
//
// Every process of a namespace must be configured with the same limits. redis_store
// enforces them on a standalone server in the claim's script, and on a Redis Cluster in
// steps on the type's slot and the shard's (see docs/scheduler.md "Limits").

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace corvo::schedule {

/// At most `starts` starts in any window of length `per`.
struct rate_limit {
  std::uint32_t starts = 0;
  std::chrono::milliseconds per{1000};

  friend bool operator==(const rate_limit&, const rate_limit&) = default;
};

/// Parses "N/DURATION" ("100/1s", "5/250ms", "1000/1m"; "100/s" means "100/1s"): N >= 1, the
/// duration > 0 whole ms. Throws std::invalid_argument naming `what` and the text.
rate_limit parse_rate(std::string_view text, std::string_view what = "rate");
/// "100/1s", "5/250ms": what parse_rate reads back.
std::string to_string(const rate_limit& rate);

/// The limits of one task type across every process; an unset field is no limit.
struct type_limit {
  /// Runs of the type at once (>= 1).
  std::optional<std::uint32_t> concurrency;
  std::optional<rate_limit> rate;

  bool limited() const noexcept { return concurrency.has_value() || rate.has_value(); }
  friend bool operator==(const type_limit&, const type_limit&) = default;
};

/// Limits by task type.
using type_limits = std::map<std::string, type_limit, std::less<>>;

/// What one type's limit holds now (store::limit_states).
struct limit_state {
  std::string type;
  type_limit limit;
  /// Concurrency permits held (runs claimed and not yet acked or nacked).
  std::uint64_t running = 0;
  /// Starts within the last `rate.per`.
  std::uint64_t recent_starts = 0;
  /// Due tasks held back by the limit (scheduled, waiting for a permit).
  std::uint64_t held = 0;
};

}  // namespace corvo::schedule
