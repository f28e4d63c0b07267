// Limits on a Redis Cluster (redis_store::set_limits; docs/scheduler.md "Limits"). A limited
// type's permits live in its own slot, `{ns:limit:<type>}`, and a shard's tasks in the
// shard's, so no script can take a permit and claim a task at once. The claim goes in steps,
// each one atomic script on one slot (redis_limit_scripts.hpp):
//
//   1. claim (the shard): as on a standalone server, except that every due task of a limited
//      type is held (attempts and record untouched, as when no permit is free); reports the
//      held count per limited type.
//   2. acquire (the type's slot): up to min(held, the batch's room) permits, each a token
//      '<counter>.<nonce>@<type in hex>' in `running` (deadline now + lease) and `starts`
//      (now).
//      Fewer than asked: the shard registers as waiting and permit_at is when one may free.
//   3. start_held (the shard): up to that many held tasks of the type, in the claim's order,
//      into flight with exactly those tokens as their lease tokens (attempt counted, started
//      event), returned as claimed tasks; the unused tokens come back.
//      It runs without permits too when the shard is registered as waiting, to learn whether
//      it still holds tasks of the type (a held count from step 1 may be stale); when it
//      does, the registration is recorded as checked in the shard (`{ns:s}:waits`).
//   4. release 'unused' (the type's slot): the unused permits are given back (running and
//      starts: a start that did not happen does not count), and the shard's waiting
//      registration goes when its held set is empty: one made before step 2, or checked in
//      step 3 by another claim before this one emptied the shard (the shard's slot orders
//      those); a later one belongs to a claim that held new tasks meanwhile.
//
// ack and nack release the permits of the tokens they carry after the shard's script (the
// token names its type); extend renews them after the shard's script renewed the leases. A
// release that frees a permit publishes a random waiting shard's prefix on the type's wake
// channel, and every watch_wakes wakes that shard.
//
// A crash (or an error) between steps never lets more runs start than the limits allow; it
// can leave permits taken that no run uses until their deadline (the lease): fewer starts
// for that long. After 2: permits taken, no task started. After 3: the unused permits taken.
// A release that fails after its ack: the permit frees at its deadline.

#include <corvo/core/exception.hpp>

#include "redis_store_impl.hpp"

namespace corvo::schedule {
namespace {

using detail::redis_store_support::parse_time;

// A claim whose permit step failed (the type's node unreachable) reports a permit time this
// far ahead, so the dispatcher tries again then instead of at once.
constexpr std::chrono::seconds permit_retry_delay{1};

void earliest(std::optional<time_point>& slot, time_point t) {
  if (!slot || t < *slot) {
    slot = t;
  }
}

// A permit token names its type in hex ('<counter>.<nonce>@<hex>'): a lease token is one
// word (of the record and of the leased set's member), and a type may hold any byte.
std::string hex_of(std::string_view type) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * type.size());
  for (const unsigned char c : type) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// The type a permit token names; nullopt for a token of a task without a permit of its own
// (the counter and the nonce never hold '@') or one that does not decode.
std::optional<std::string> type_of_token(std::string_view token) {
  const auto at = token.find('@');
  if (at == std::string_view::npos || (token.size() - at - 1) % 2 != 0 || at + 1 == token.size()) {
    return std::nullopt;
  }
  std::string type;
  for (std::size_t i = at + 1; i < token.size(); i += 2) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(token.data() + i, token.data() + i + 2, value, 16);
    if (ec != std::errc{} || end != token.data() + i + 2) {
      return std::nullopt;
    }
    type += static_cast<char>(value);
  }
  return type;
}

// The tokens that hold a permit, by type.
std::map<std::string, std::vector<std::string>, std::less<>> by_type(
    const std::vector<std::string>& tokens) {
  std::map<std::string, std::vector<std::string>, std::less<>> out;
  for (const auto& token : tokens) {
    if (auto type = type_of_token(token)) {
      out[std::move(*type)].push_back(token);
    }
  }
  return out;
}

std::vector<std::size_t> parse_counts(const std::string& text, std::size_t expected) {
  std::vector<std::size_t> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(text.data() + pos, text.data() + text.size(), n);
    if (ec != std::errc{}) {
      break;
    }
    out.push_back(n);
    pos = static_cast<std::size_t>(end - text.data());
    if (pos < text.size() && text[pos] == ' ') {
      ++pos;
    }
  }
  if (out.size() != expected || pos != text.size()) {
    throw std::runtime_error("redis_store claim: malformed held counts '" + text + "' (" +
                             std::to_string(expected) + " limited types)");
  }
  return out;
}

}  // namespace

asio::awaitable<void> redis_store::impl::start_held(unsigned shard, std::size_t limit,
                                                    std::chrono::milliseconds lease,
                                                    const std::string& held_counts,
                                                    claim_result& out) {
  const auto counts = parse_counts(held_counts, limit_types.size());
  std::size_t room = limit > out.tasks.size() ? limit - out.tasks.size() : 0;
  const auto prefix = shard_prefix(shard);
  for (std::size_t i = 0; i < limit_types.size(); ++i) {
    if (counts[i] == 0) {
      continue;
    }
    if (room == 0) {
      earliest(out.permit_at, out.store_now);  // the batch is full: claim again at once
      continue;
    }
    const auto& type = limit_types[i];
    const auto& limit_of_type = limits.at(type);
    std::exception_ptr failed;
    try {
      // 2. The permits.
      const auto want = std::min(counts[i], room);
      std::vector<std::string> acquire_keys{limit_key(type, "running"), limit_key(type, "starts"),
                                            limit_key(type, "seq"), limit_key(type, "waiting"),
                                            limit_key(type, "waiting:seq")};
      std::vector<std::string> acquire_args{
          std::to_string(want),
          std::to_string(limit_of_type.rate ? limit_of_type.rate->starts : 0),
          std::to_string(limit_of_type.rate
                             ? std::chrono::duration_cast<micros>(limit_of_type.rate->per).count()
                             : 0),
          std::to_string(limit_of_type.concurrency ? *limit_of_type.concurrency : 0),
          std::to_string(lease.count()),
          random_hex(1),
          hex_of(type),
          prefix};
      const auto acquired = co_await run_on<std::vector<std::string>>(
          limit_acquire_script, std::move(acquire_keys), std::move(acquire_args), "claim");
      if (acquired.size() < 4 || acquired.size() - 4 > want) {
        throw std::runtime_error("redis_store claim: malformed permit reply of " +
                                 std::to_string(acquired.size()) + " elements");
      }
      const auto permits_at = parse_time(acquired[0]);
      const auto refused_until = parse_time(acquired[1]);
      const std::string& seen = acquired[2];
      const bool registered = acquired[3] == "1";
      std::string checked = seen;  // registrations up to it go when this claim empties the shard
      std::vector<std::string> unused;
      std::size_t left = counts[i];

      // 3. The held tasks, with those permits. A shard left registered as waiting runs it
      // without permits too: its held count may be stale (another process's claim may have
      // started them since step 1), and a registration of an empty shard would take the
      // wake-ups of the others.
      if (acquired.size() > 4 || registered) {
        std::vector<std::string> start_args{type, std::to_string(lease.count()), events_arg,
                                            registered ? seen : std::string()};
        start_args.insert(start_args.end(), acquired.begin() + 4, acquired.end());
        auto start_keys = keys[shard];
        start_keys.push_back(prefix + "waits");
        const auto started = co_await run_on<std::vector<std::string>>(
            limit_start_held_script, std::move(start_keys), std::move(start_args), "claim");
        constexpr std::size_t head = 6;  // then the unused tokens, then the tasks
        std::size_t unused_count = 0;
        if (started.size() < head ||
            std::from_chars(started[5].data(), started[5].data() + started[5].size(), unused_count)
                    .ec != std::errc{} ||
            started.size() < head + unused_count ||
            (started.size() - head - unused_count) % 4 != 0) {
          throw std::runtime_error("redis_store claim: malformed reply of the held tasks' start");
        }
        left = std::strtoull(started[1].c_str(), nullptr, 10);
        if (const auto lease_expiry = parse_time(started[2])) {
          earliest(out.next_lease_expiry, *lease_expiry);
        }
        count_reported(started[3], "claim");
        if (!started[4].empty() && std::strtoull(started[4].c_str(), nullptr, 10) >
                                       std::strtoull(checked.c_str(), nullptr, 10)) {
          checked = started[4];  // a registration found holding tasks before this claim emptied
        }
        unused.assign(started.begin() + head, started.begin() + head + unused_count);
        for (std::size_t j = head + unused_count; j < started.size(); j += 4) {
          // The rate counts the start at the permit's time (on the type's node).
          out.tasks.push_back(claimed_from(shard, *permits_at, &started[j]));
          --room;
        }
      }

      // 4. The permits not used back; the shard's registration when it holds none (those
      // made before this claim's acquire or checked before it emptied the shard).
      const bool emptied = left == 0;
      if (!unused.empty() || (emptied && (registered || checked != seen))) {
        std::vector<std::string> release_args{"unused", emptied ? prefix : std::string(), checked};
        release_args.insert(release_args.end(), unused.begin(), unused.end());
        co_await run_on<long long>(limit_release_script, release_keys(type),
                                   std::move(release_args), "claim");
      }
      if (left > 0) {
        // Held for want of a permit (the time it may free), or of room in the batch (now).
        earliest(out.permit_at, refused_until ? *refused_until : out.store_now);
      }
    } catch (...) {
      failed = std::current_exception();
    }
    if (failed) {
      if (is_operation_aborted(failed)) {
        std::rethrow_exception(failed);
      }
      // The tasks started so far are returned: failing the claim would leave them in flight
      // unseen until their leases expire. The held ones wait for the next claim.
      CORVO_LOG(warning, "scheduler")
          << "claim on shard " << shard << ": the permits of type '" << type
          << "' failed: " << corvo::describe(failed) << "; its held tasks wait";
      earliest(out.permit_at, out.store_now + permit_retry_delay);
    }
  }
}

asio::awaitable<void> redis_store::impl::release_permits(const std::vector<std::string>& tokens,
                                                         const char* what) {
  for (auto& [type, ended] : by_type(tokens)) {
    std::exception_ptr failed;
    try {
      std::vector<std::string> release_args{"ended", "", "0"};
      release_args.insert(release_args.end(), ended.begin(), ended.end());
      co_await run_on<long long>(limit_release_script, release_keys(type), std::move(release_args),
                                 what);
    } catch (...) {
      failed = std::current_exception();
    }
    if (failed) {
      if (is_operation_aborted(failed)) {
        std::rethrow_exception(failed);
      }
      CORVO_LOG(warning, "scheduler")
          << "redis_store " << what << ": releasing " << ended.size() << " permit(s) of type '"
          << type << "' failed: " << corvo::describe(failed)
          << "; they free at their lease deadline";
    }
  }
}

asio::awaitable<void> redis_store::impl::renew_permits(const std::vector<std::string>& tokens,
                                                       std::chrono::milliseconds lease) {
  for (auto& [type, renewed] : by_type(tokens)) {
    std::vector<std::string> renew_keys{limit_key(type, "running")};
    std::vector<std::string> renew_args{std::to_string(lease.count())};
    renew_args.insert(renew_args.end(), renewed.begin(), renewed.end());
    co_await run_on<long long>(limit_renew_script, std::move(renew_keys), std::move(renew_args),
                               "extend");
  }
}

std::vector<std::string> redis_store::impl::permit_channels() const {
  std::vector<std::string> out;
  if (split_limits) {
    for (const auto& type : limit_types) {
      out.push_back(limit_key(type, "wake"));
    }
  }
  return out;
}

std::optional<unsigned> redis_store::impl::shard_of_prefix(const std::string& prefix) const {
  const auto it = channel_to_shard.find(prefix + "wake");
  if (it == channel_to_shard.end()) {
    return std::nullopt;
  }
  return it->second;
}

}  // namespace corvo::schedule
