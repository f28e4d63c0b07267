#pragma once
// The Redis store's state and the helpers its source files share: redis_store.cpp (the
// task operations: schedule, get, cancel, reschedule, claim, ack, nack, extend, the wake-up
// watch), redis_store_admin.cpp (inspection and administration: browse, stats, dead
// letters, in flight, pause and resume, restore, replay, purge, limit states) and
// redis_store_limits.cpp (limits on a Redis Cluster: the permits taken in their own slot).

#include <unistd.h>

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <charconv>
#include <cmath>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/script.hpp>
#include <corvo/schedule/detail/lua_assembly.hpp>
#include <corvo/schedule/detail/record.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/shard.hpp>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "event_tally.hpp"
#include "redis_dedup_scripts.hpp"
#include "redis_events.hpp"
#include "redis_limit_scripts.hpp"
#include "redis_scripts.hpp"

namespace corvo::schedule {
namespace detail::redis_store_support {

namespace lua = detail::lua;
using micros = std::chrono::microseconds;

inline time_point from_micros(double us) {
  return time_point(micros(std::llround(us)));
}

inline std::optional<time_point> parse_time(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  return from_micros(std::strtod(std::string(text).c_str(), nullptr));
}

inline std::string micros_text(time_point t) {
  return std::to_string(t.time_since_epoch().count());
}

// Checks a task about to be scheduled (schedule, if absent, deduplicated) and sets what
// every new schedule stores: max_attempts 0 becomes the default, attempts and last error
// start over, the occurrence is the due time. Throws std::invalid_argument.
inline void prepare_schedule(task& t) {
  if (t.id.empty()) {
    throw std::invalid_argument("schedule: the task id is empty");
  }
  if (t.max_attempts == 0) {
    t.max_attempts = default_max_attempts;
  }
  if (t.retry) {
    schedule::validate(*t.retry, "task '" + t.id + "'");
  }
  t.attempts = 0;
  t.last_error.clear();
  t.occurrence = t.due;
}

// Throws std::invalid_argument for a deduplication window <= 0.
inline void check_window(const task& t, const dedup_options& options) {
  if (options.window <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("task '" + t.id + "': the deduplication window must be positive");
  }
}

// The line every script of the Redis store starts with: this store's settings the prelude
// reads (compact_on, compact_after: redis_script_prelude.hpp, the compact tier).
inline std::string script_settings(const redis_store_options& options) {
  return "local compact_on, compact_after = " + std::string(options.compact ? "true" : "false") +
         ", " + std::to_string(std::chrono::duration_cast<micros>(options.compact_after).count()) +
         "\n";
}

// A script of the settings line, the prelude's helpers `body` needs and `body`
// (detail::assemble_script: Redis runs every definition of a script on each call).
inline redis::script make_script(const std::string& settings, const char* body) {
  return redis::script(detail::assemble_script(settings, lua::prelude, body));
}

// A script of the settings line, the helpers `body` needs of the prelude and of the
// `helpers` its family shares (deduplication, limits), and `body`.
inline redis::script make_script(const std::string& settings, const char* helpers,
                                 const char* body) {
  return redis::script(
      detail::assemble_script(settings, std::string(lua::prelude) + helpers, body));
}

// The values of a reply's scalar nodes in order: a RESP3 map or pairs of arrays read as a
// flat list (as RESP2 sends them).
inline std::vector<std::string> leaves_of(const redis::generic_response& nodes) {
  std::vector<std::string> leaves;
  for (const auto& n : nodes) {
    if (!redis::resp3::is_aggregate(n.data_type)) {
      leaves.push_back(n.value);
    }
  }
  return leaves;
}

// (member, score) pairs of a ZRANGE ... WITHSCORES reply: RESP3 sends [member, score]
// arrays, RESP2 a flat list; both are accepted.
inline std::vector<std::pair<std::string, double>> scored_members(
    const redis::generic_response& nodes) {
  std::vector<std::pair<std::string, double>> out;
  auto leaves = leaves_of(nodes);
  for (std::size_t i = 0; i + 1 < leaves.size(); i += 2) {
    out.emplace_back(std::move(leaves[i]), std::strtod(leaves[i + 1].c_str(), nullptr));
  }
  return out;
}

// `words` × 64 random bits in hex: a claim's nonce (one word: tokens stay unique even when
// the shard's counter is rolled back; see the claim script) and a deduplicated schedule's
// ticket (two words, unique to one call; redis_store_dedup.cpp).
inline std::string random_hex(std::size_t words) {
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::string text;
  text.reserve(16 * words);
  for (std::size_t i = 0; i < words; ++i) {
    char word[17];
    std::snprintf(word, sizeof word, "%016llx", static_cast<unsigned long long>(random()));
    text += word;
  }
  return text;
}

// `<host>:<pid>`: the default source of this process's events.
inline std::string this_process() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) {
    host[0] = '\0';
  }
  return std::string(host) + ":" + std::to_string(::getpid());
}

inline asio::awaitable<void> run_client(redis::client& conn) {
  co_await conn.run();
}

// A record of the older layout has no occurrence: its due time is the best there is.
inline void default_occurrence(task& t) {
  if (t.occurrence == time_point{}) {
    t.occurrence = t.due;
  }
}

// A claimed task from a claim reply's (id, token, due, record) at `fields`, claimed at `at`.
// A record this code cannot read stays claimed with its reason; the dispatcher dead-letters
// it instead of crashing.
inline claimed_task claimed_from(unsigned shard, time_point at, const std::string* fields) {
  claimed_task c;
  c.shard = shard;
  c.claimed_at = at;
  c.work.id = fields[0];
  c.token = fields[1];
  c.work.due = *parse_time(fields[2]);
  c.work.state = task_state::in_flight;
  try {
    detail::decode_record(fields[3], c.work);
    detail::apply_lease(c.token, c.work);
    default_occurrence(c.work);
  } catch (const std::exception& e) {
    c.work.type.clear();
    c.work.last_error = std::string("undecodable task record: ") + e.what();
  }
  return c;
}

[[noreturn]] inline void fail(const redis::reply_error& e, const char* what) {
  throw boost::system::system_error(e.code, std::string("redis_store ") + what + ": " + e.message);
}

template <class T>
const T& value_or_throw(const redis::result<T>& r, const char* what) {
  if (!r.has_value()) {
    fail(r.error(), what);
  }
  return *r;
}

}  // namespace detail::redis_store_support

using namespace detail::redis_store_support;

struct redis_store::impl {
  impl(redis::client& c, redis::client_config sub, redis_store_options opts)
      : conn(c), subscriber(std::move(sub)), options(std::move(opts)) {
    if (options.wait_replicas > 0 && options.wait_timeout <= std::chrono::milliseconds::zero()) {
      throw std::invalid_argument(
          "redis_store: wait_timeout must be positive when wait_replicas is set (WAIT 0 "
          "would block forever)");
    }
    if (options.compact_after < std::chrono::milliseconds::zero()) {
      throw std::invalid_argument("redis_store: compact_after must not be negative");
    }
    if (options.events.enabled) {
      if (options.events.max_len == 0) {
        throw std::invalid_argument("redis_store: events.max_len must be at least 1");
      }
      if (options.events.source.empty()) {
        options.events.source = this_process();
      }
      events_arg = std::to_string(options.events.max_len) + " " + options.events.source;
    }
    if (options.shards > 0) {
      make_keys();
    }
  }

  // The prefix of every key of `shard`: '{ns:s}:' (its hash tag, then the colon).
  std::string shard_prefix(unsigned shard) const {
    return "{" + options.name_space + ":" + std::to_string(shard) + "}:";
  }

  void make_keys() {
    for (unsigned s = 0; s < options.shards; ++s) {
      const std::string tag = shard_prefix(s);
      keys.push_back({tag + "due", tag + "tasks", tag + "inflight", tag + "lease", tag + "dead",
                      tag + "seq", tag + "wake", tag + "parked", tag + "paused", tag + "due:high",
                      tag + "due:low", tag + "held", tag + "events"});
      leased_keys.push_back(tag + "leased");
      channel_to_shard.emplace(tag + "wake", s);
    }
  }

  std::string shard_count_key() const { return "{" + options.name_space + "}:shards"; }

  // The deduplication window of `id` (schedule_deduplicated), in the shard's slot.
  std::string window_key(unsigned shard, const std::string& id) const {
    return shard_prefix(shard) + "window:" + id;
  }

  // The window of a deduplication key (schedule_deduplicated_by_key), in the key's own slot.
  std::string dedup_window_key(std::string_view key) const {
    return "{" + options.name_space + ":dedup:" + std::string(key) + "}:window";
  }

  // The marker of one deduplicated schedule (its ticket), in its task's shard.
  std::string dedup_marker_key(unsigned shard, const std::string& ticket) const {
    return shard_prefix(shard) + "dedup:" + ticket;
  }

  // Reads the namespace's shard count (writing ours on first use) once; see open().
  asio::awaitable<void> open() {
    if (opened) {
      co_return;
    }
    const auto key = shard_count_key();
    redis::request req;
    if (options.shards == 0) {
      req.push("GET", key);
    } else {
      req.push("SET", key, std::to_string(options.shards), "NX", "GET");
    }
    redis::response<std::optional<std::string>> resp;
    co_await conn.exec(req, resp);
    const auto stored = value_or_throw(std::get<0>(resp), "open");
    if (opened) {
      co_return;  // a concurrent first call got there first
    }
    if (options.shards == 0) {
      if (!stored) {
        throw std::runtime_error("redis_store: namespace '" + options.name_space +
                                 "' has no stored shard count (key '" + key +
                                 "' is missing): nothing has used it yet; give the shard count");
      }
      const auto count = std::strtoul(stored->c_str(), nullptr, 10);
      if (count == 0 || std::to_string(count) != *stored) {
        throw std::runtime_error("redis_store: key '" + key + "' holds '" + *stored +
                                 "', not a shard count");
      }
      options.shards = static_cast<unsigned>(count);
      make_keys();
    } else if (stored && *stored != std::to_string(options.shards)) {
      throw std::runtime_error(
          "redis_store: namespace '" + options.name_space + "' has " + *stored + " shards (key '" +
          key + "') but this store was configured with " + std::to_string(options.shards) +
          " shards; use the namespace's count (or shards = 0 to adopt it)");
    }
    if (options.compact) {
      co_await read_listpack_value();
    }
    opened = true;
  }

  // Reads the server's hash-max-listpack-value (the compact tier's buckets stay listpacks
  // only for records up to it); left 0 when CONFIG is refused (a managed service may rename
  // it): nothing is checked then.
  asio::awaitable<void> read_listpack_value() {
    redis::request req;
    req.push("CONFIG", "GET", "hash-max-listpack-value");
    redis::generic_response nodes;
    try {
      co_await conn.exec(req, nodes);
    } catch (const boost::system::system_error&) {
      co_return;
    }
    const auto leaves = leaves_of(nodes);  // {name, value}
    if (leaves.size() == 2) {
      listpack_value = std::strtoull(leaves[1].c_str(), nullptr, 10);
    }
  }

  // detail::encode_waiting_record of a task to schedule, warning once when the record is
  // longer than the server's hash-max-listpack-value with the compact tier on: a bucket
  // holding it leaves the listpack encoding (docs/scheduler.md, Memory: the compact tier).
  std::string waiting_record(const task& t) {
    auto record = detail::encode_waiting_record(t);
    const auto bytes = record.size();
    if (options.compact && listpack_value > 0 && bytes > listpack_value && !warned_listpack) {
      warned_listpack = true;
      CORVO_LOG(warning, "scheduler")
          << "a task record of " << bytes << " bytes is longer than the server's "
          << "hash-max-listpack-value (" << listpack_value << "): the compact tier's buckets "
          << "that hold such records take Redis's larger encoding (more memory per task); "
          << "set hash-max-listpack-value to at least " << bytes
          << " in the server's configuration (docs/scheduler.md, Memory: the compact tier)";
    }
    return record;
  }

  // The keys of `type`'s limit (redis_scripts.hpp): running, starts, waiting.
  std::string limit_key(const std::string& type, const char* which) const {
    return "{" + options.name_space + ":limit:" + type + "}:" + which;
  }

  // The KEYS of limit_release_script (redis_limit_scripts.hpp) for `type`.
  std::vector<std::string> release_keys(const std::string& type) const {
    return {limit_key(type, "running"), limit_key(type, "starts"), limit_key(type, "waiting"),
            limit_key(type, "waiting:seq"), limit_key(type, "wake")};
  }

  // set_limits(): the limited types and what the scripts get for them. On a cluster the
  // shard scripts get the types without their keys (redis_store_limits.cpp).
  void set_limits(type_limits given) {
    limits.clear();
    claim_limit_keys.clear();
    claim_limit_args.clear();
    release_limit_keys.clear();
    limit_types.clear();
    shard_limit_types.clear();
    split_limits = false;
    for (auto& [type, limit] : given) {
      if (!limit.limited()) {
        continue;
      }
      if (type.empty() || type.find('\n') != std::string::npos) {
        throw std::invalid_argument("redis_store: '" + type + "' is not a task type");
      }
      if (limit.concurrency && *limit.concurrency == 0) {
        throw std::invalid_argument("redis_store: type '" + type + "': concurrency must be >= 1");
      }
      if (limit.rate && (limit.rate->starts == 0 || limit.rate->per.count() <= 0)) {
        throw std::invalid_argument("redis_store: type '" + type + "': rate must be N/DURATION");
      }
      if (conn.is_cluster()) {
        split_limits = true;
      } else {
        for (const char* which : {"running", "starts", "waiting"}) {
          claim_limit_keys.push_back(limit_key(type, which));
        }
        release_limit_keys.push_back(limit_key(type, "running"));
        release_limit_keys.push_back(limit_key(type, "waiting"));
        shard_limit_types.push_back(type);
      }
      limit_types.push_back(type);
      claim_limit_args.push_back(type);
      claim_limit_args.push_back(std::to_string(limit.rate ? limit.rate->starts : 0));
      claim_limit_args.push_back(std::to_string(
          limit.rate ? std::chrono::duration_cast<micros>(limit.rate->per).count() : 0));
      claim_limit_args.push_back(std::to_string(limit.concurrency ? *limit.concurrency : 0));
      limits.emplace(type, limit);
    }
  }

  // A shard's keys followed by `extra` (the limits' keys).
  std::vector<std::string> keys_with(unsigned shard, const std::vector<std::string>& extra) const {
    auto out = keys[shard];
    out.insert(out.end(), extra.begin(), extra.end());
    return out;
  }

  redis::client& conn;
  redis::client_config subscriber;
  redis_store_options options;
  /// The first line of every script (script_settings); set before the scripts below.
  std::string settings = script_settings(options);
  std::vector<std::vector<std::string>> keys;
  /// Per shard: the leased set ('<id> <token>' -> lease deadline; redis_scripts.hpp, leased_key).
  std::vector<std::string> leased_keys;
  type_limits limits;
  std::vector<std::string> claim_limit_keys;    // per type: running, starts, waiting
  std::vector<std::string> claim_limit_args;    // per type: type, starts, window_us, concurrency
  std::vector<std::string> release_limit_keys;  // per type: running, waiting
  std::vector<std::string> limit_types;
  // The limited types the shard scripts release and renew permits of: every one on a
  // standalone server, none on a cluster (the store does it in the types' slots).
  std::vector<std::string> shard_limit_types;
  std::unordered_map<std::string, unsigned> channel_to_shard;

  // ---- limits on a Redis Cluster (redis_store_limits.cpp) ----------------------------------
  // Set by set_limits() on a cluster client with at least one limited type.
  bool split_limits = false;
  redis::script limit_acquire_script =
      make_script(settings, lua::limit_helpers, lua::limit_acquire);
  redis::script limit_start_held_script = make_script(settings, lua::limit_start_held);
  redis::script limit_release_script =
      make_script(settings, lua::limit_helpers, lua::limit_release);
  redis::script limit_renew_script = make_script(settings, lua::limit_renew);
  // After claim()'s shard script reported `held_counts` (its permit_at field): takes permits
  // for the held tasks, starts them (appended to `out`, within `limit` tasks in all) and sets
  // out.permit_at. Throws only when cancelled: a failed step leaves the held tasks held.
  asio::awaitable<void> start_held(unsigned shard, std::size_t limit,
                                   std::chrono::milliseconds lease, const std::string& held_counts,
                                   claim_result& out);
  // Releases the permits of ended runs (ack, nack) in their types' slots; the tokens that
  // name no type ('…@<type in hex>') hold no permit. Failures are logged: the permit then frees at
  // its deadline.
  asio::awaitable<void> release_permits(const std::vector<std::string>& tokens, const char* what);
  // Renews the permits of renewed leases in their types' slots. Throws on failure.
  asio::awaitable<void> renew_permits(const std::vector<std::string>& tokens,
                                      std::chrono::milliseconds lease);
  // The shard channels permit wake-ups arrive on (watch_wakes), and the shard of a prefix.
  std::vector<std::string> permit_channels() const;
  std::optional<unsigned> shard_of_prefix(const std::string& prefix) const;
  bool opened = false;
  /// The server's hash-max-listpack-value (0: not known); see waiting_record().
  std::size_t listpack_value = 0;
  bool warned_listpack = false;
  /// The scripts' events argument (redis_scripts.hpp): 'MAX_LEN SOURCE', or '0' when off.
  std::string events_arg = "0";
  /// The events the scripts wrote, by kind (event_counts.hpp).
  detail::event_tally tally;

  /// Counts `n` events of `kind` when events are on (a script that returns only its outcome
  /// wrote exactly that many).
  void count_events(event_kind kind, std::uint64_t n = 1) noexcept {
    if (options.events.enabled && n > 0) {
      tally.add(kind, n);
    }
  }
  /// A {outcome, events written} reply (ack, nack): counts the events, returns the outcome.
  long long count_outcome(const std::vector<std::string>& reply, const char* what) {
    long long outcome = 0;
    if (reply.size() != 2 ||
        std::from_chars(reply[0].data(), reply[0].data() + reply[0].size(), outcome).ec !=
            std::errc{}) {
      throw std::runtime_error(std::string("redis_store ") + what + ": malformed reply");
    }
    count_reported(reply[1], what);
    return outcome;
  }
  /// Counts what a script reported it wrote (ev_tally in redis_scripts.hpp).
  void count_reported(const std::string& reported, const char* what) {
    if (!tally.add_reported(reported)) {
      throw std::runtime_error(std::string("redis_store ") + what + ": malformed event counts '" +
                               reported + "'");
    }
  }

  redis::script schedule_script = make_script(settings, lua::schedule);
  redis::script schedule_dedup_script = make_script(settings, lua::schedule_dedup);
  redis::script dedup_window_script = redis::script(lua::dedup_window);
  redis::script dedup_restart_script = redis::script(lua::dedup_restart);
  redis::script dedup_schedule_script =
      make_script(settings, lua::dedup_helpers, lua::dedup_schedule);
  redis::script dedup_void_script = make_script(settings, lua::dedup_helpers, lua::dedup_void);
  redis::script claim_script = make_script(settings, lua::claim);
  redis::script ack_script = make_script(settings, lua::ack);
  redis::script nack_script = make_script(settings, lua::nack);
  redis::script extend_script = make_script(settings, lua::extend);
  redis::script cancel_script = make_script(settings, lua::cancel);
  redis::script lease_of_script = make_script(settings, lua::lease_of);
  redis::script reschedule_script = make_script(settings, lua::reschedule);
  redis::script replay_script = make_script(settings, lua::replay);
  redis::script purge_script = make_script(settings, lua::purge);
  redis::script pause_script = make_script(settings, lua::pause);
  redis::script resume_script = make_script(settings, lua::resume);
  redis::script restore_dead_script = make_script(settings, lua::restore_dead);
  redis::script compact_peek_script = make_script(settings, lua::compact_peek);
  redis::script compact_page_script = make_script(settings, lua::compact_page);
  redis::script compact_stats_script = make_script(settings, lua::compact_stats);
  redis::script compact_move_script = make_script(settings, lua::compact_move);

  // Runs `s` with `call_keys` and `args`; its reply as T (a failure throws, naming `what`).
  template <class T>
  asio::awaitable<T> run_on(const redis::script& s, std::vector<std::string> call_keys,
                            std::vector<std::string> args, const char* what,
                            redis::request::config cfg = {}) {
    redis::response<T> resp;
    co_await s.exec(conn, std::move(call_keys), std::move(args), resp, cfg);
    co_return value_or_throw(std::get<0>(resp), what);
  }

  // run_on a shard's keys.
  template <class T>
  asio::awaitable<T> run_script(const redis::script& s, unsigned shard,
                                std::vector<std::string> args, const char* what,
                                redis::request::config cfg = {}) {
    co_return co_await run_on<T>(s, keys[shard], std::move(args), what, cfg);
  }

  // run_on a shard's keys followed by the limits' `extra` keys.
  template <class T>
  asio::awaitable<T> run_limited(const redis::script& s, unsigned shard,
                                 const std::vector<std::string>& extra,
                                 std::vector<std::string> args, const char* what,
                                 redis::request::config cfg = {}) {
    co_return co_await run_on<T>(s, keys_with(shard, extra), std::move(args), what, cfg);
  }

  // Runs a write that must be durable (schedule, cancel, ack) and, with wait_replicas set,
  // WAITs for that many replicas. The WAIT travels in the same request as the script: a
  // request goes whole, in order, over one connection to the node of its keys (the script's
  // KEYS; WAIT has none), so it waits for exactly the replication of this write. WAIT
  // blocks its connection, which the client refuses on the shared one (it would stall every
  // other call behind it), so the request goes over a dedicated connection made for the
  // call (`client::dedicated()`: in a cluster it connects to the master of the shard's
  // slot): one connection set-up per durable write, the price of the opt-in.
  // `cfg` applies without wait_replicas (a durable write's connection is made for the call).
  template <class T>
  asio::awaitable<T> run_durable(const redis::script& s, unsigned shard,
                                 std::vector<std::string> args, const char* what,
                                 redis::request::config cfg = {}) {
    if (options.wait_replicas == 0) {
      co_return co_await run_script<T>(s, shard, std::move(args), what, cfg);
    }
    co_return co_await run_durable_on<T>(s, keys[shard], std::move(args), what);
  }

  // run_durable with the call's own KEYS (the shard's, plus keys of the same slot).
  template <class T>
  asio::awaitable<T> run_durable_on(const redis::script& s, std::vector<std::string> call_keys,
                                    std::vector<std::string> args, const char* what) {
    if (options.wait_replicas == 0) {
      co_return co_await run_on<T>(s, std::move(call_keys), std::move(args), what);
    }
    redis::request req;
    s.push_to(req, call_keys, args);
    req.push("WAIT", options.wait_replicas, options.wait_timeout.count());
    redis::response<T, long long> resp;
    const auto durable = conn.dedicated();
    auto executor = co_await asio::this_coro::executor;
    task_group group(executor);
    co_await group.spawn(run_client(*durable));
    std::exception_ptr failed;
    try {
      co_await durable->exec(req, resp);
      if (redis::script::is_noscript(std::get<0>(resp))) {
        redis::request load;
        s.push_load_to(load);
        redis::response<std::string> loaded;
        const auto to_shard = redis::route_hint::for_key(call_keys[0]);
        co_await durable->exec(load, loaded, to_shard);
        value_or_throw(std::get<0>(loaded), what);
        co_await durable->exec(req, resp);
      }
    } catch (...) {
      failed = std::current_exception();
    }
    // As in watch_wakes: a cancelled caller still stops and joins the connection first.
    const auto cancellation = co_await asio::this_coro::cancellation_state;
    if (cancellation.cancelled() != asio::cancellation_type::none && !failed) {
      failed = std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted));
    }
    co_await asio::this_coro::reset_cancellation_state();
    durable->cancel();
    try {
      co_await group.join();
    } catch (...) {
      // the connection's own end (cancelled); the request's outcome is what counts
    }
    if (failed) {
      std::rethrow_exception(failed);
    }
    const T result = value_or_throw(std::get<0>(resp), what);
    const auto replicas = value_or_throw(std::get<1>(resp), what);
    if (replicas < static_cast<long long>(options.wait_replicas)) {
      throw std::runtime_error(
          std::string("redis_store ") + what + ": applied on the master but acknowledged by " +
          std::to_string(replicas) + " of " + std::to_string(options.wait_replicas) +
          " replica(s) within " + std::to_string(options.wait_timeout.count()) +
          " ms (wait_replicas): a failover now may lose it");
    }
    co_return result;
  }

  unsigned shard_for(std::string_view id) const {
    return corvo::schedule::shard_of(id, options.shards);
  }
};

}  // namespace corvo::schedule
