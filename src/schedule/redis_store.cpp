#include <unistd.h>

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <charconv>
#include <cmath>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/script.hpp>
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
#include "redis_events.hpp"
#include "redis_scripts.hpp"

namespace corvo::schedule {
namespace {

namespace lua = detail::lua;
using micros = std::chrono::microseconds;

time_point from_micros(double us) {
  return time_point(micros(std::llround(us)));
}

std::optional<time_point> parse_time(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  return from_micros(std::strtod(std::string(text).c_str(), nullptr));
}

std::string micros_text(time_point t) {
  return std::to_string(t.time_since_epoch().count());
}

redis::script make_script(const char* body) {
  return redis::script(std::string(lua::prelude) + body);
}

// (member, score) pairs of a ZRANGE ... WITHSCORES reply: RESP3 sends [member, score]
// arrays, RESP2 a flat list; both are accepted.
std::vector<std::pair<std::string, double>> scored_members(const redis::generic_response& nodes) {
  std::vector<std::pair<std::string, double>> out;
  std::vector<std::string> leaves;
  for (const auto& n : nodes) {
    if (!redis::resp3::is_aggregate(n.data_type)) {
      leaves.push_back(n.value);
    }
  }
  for (std::size_t i = 0; i + 1 < leaves.size(); i += 2) {
    out.emplace_back(std::move(leaves[i]), std::strtod(leaves[i + 1].c_str(), nullptr));
  }
  return out;
}

// A random value for each claim (see the claim script): tokens stay unique even when the
// shard's counter is rolled back.
std::string claim_nonce() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(random()));
  return text;
}

// `<host>:<pid>`: the default source of this process's events.
std::string this_process() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) {
    host[0] = '\0';
  }
  return std::string(host) + ":" + std::to_string(::getpid());
}

asio::awaitable<void> run_client(redis::client& conn) {
  co_await conn.run();
}

// A record of the older layout has no occurrence: its due time is the best there is.
void default_occurrence(task& t) {
  if (t.occurrence == time_point{}) {
    t.occurrence = t.due;
  }
}

[[noreturn]] void fail(const redis::reply_error& e, const char* what) {
  throw boost::system::system_error(e.code, std::string("redis_store ") + what + ": " + e.message);
}

template <class T>
const T& value_or_throw(const redis::result<T>& r, const char* what) {
  if (!r.has_value()) {
    fail(r.error(), what);
  }
  return *r;
}

}  // namespace

struct redis_store::impl {
  impl(const store& owner, redis::client& c, redis::client_config sub, redis_store_options opts)
      : conn(c), subscriber(std::move(sub)), options(std::move(opts)), tally(owner) {
    if (options.wait_replicas > 0 && options.wait_timeout <= std::chrono::milliseconds::zero()) {
      throw std::invalid_argument(
          "redis_store: wait_timeout must be positive when wait_replicas is set (WAIT 0 "
          "would block forever)");
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

  void make_keys() {
    for (unsigned s = 0; s < options.shards; ++s) {
      const std::string tag = "{" + options.name_space + ":" + std::to_string(s) + "}:";
      keys.push_back({tag + "due", tag + "tasks", tag + "inflight", tag + "lease", tag + "dead",
                      tag + "seq", tag + "wake", tag + "parked", tag + "paused", tag + "due:high",
                      tag + "due:low", tag + "held", tag + "events"});
      channel_to_shard.emplace(tag + "wake", s);
    }
  }

  std::string shard_count_key() const { return "{" + options.name_space + "}:shards"; }

  // The deduplication window of `id` (schedule_deduplicated), in the shard's slot.
  std::string window_key(unsigned shard, const std::string& id) const {
    return "{" + options.name_space + ":" + std::to_string(shard) + "}:window:" + id;
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
    opened = true;
  }

  // The keys of `type`'s limit (redis_scripts.hpp): running, starts, waiting.
  std::string limit_key(const std::string& type, const char* which) const {
    return "{" + options.name_space + ":limit:" + type + "}:" + which;
  }

  // set_limits(): the limited types and what the scripts get for them.
  void set_limits(type_limits given) {
    limits.clear();
    claim_limit_keys.clear();
    claim_limit_args.clear();
    release_limit_keys.clear();
    limit_types.clear();
    for (auto& [type, limit] : given) {
      if (!limit.limited()) {
        continue;
      }
      if (conn.is_cluster()) {
        throw std::invalid_argument(
            "redis_store: limits (type '" + type +
            "': scheduler.types.<type>.rate / concurrency) need a standalone Redis server; a "
            "Redis Cluster cannot take the permit in the claim's script (see docs/scheduler.md, "
            "Limits)");
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
      for (const char* which : {"running", "starts", "waiting"}) {
        claim_limit_keys.push_back(limit_key(type, which));
      }
      release_limit_keys.push_back(limit_key(type, "running"));
      release_limit_keys.push_back(limit_key(type, "waiting"));
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
  std::vector<std::vector<std::string>> keys;
  type_limits limits;
  std::vector<std::string> claim_limit_keys;    // per type: running, starts, waiting
  std::vector<std::string> claim_limit_args;    // per type: type, starts, window_us, concurrency
  std::vector<std::string> release_limit_keys;  // per type: running, waiting
  std::vector<std::string> limit_types;
  std::unordered_map<std::string, unsigned> channel_to_shard;
  bool opened = false;
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

  redis::script schedule_script = make_script(lua::schedule);
  redis::script schedule_dedup_script = make_script(lua::schedule_dedup);
  redis::script claim_script = make_script(lua::claim);
  redis::script ack_script = make_script(lua::ack);
  redis::script nack_script = make_script(lua::nack);
  redis::script extend_script = make_script(lua::extend);
  redis::script cancel_script = make_script(lua::cancel);
  redis::script reschedule_script = make_script(lua::reschedule);
  redis::script replay_script = make_script(lua::replay);
  redis::script purge_script = make_script(lua::purge);
  redis::script pause_script = make_script(lua::pause);
  redis::script resume_script = make_script(lua::resume);
  redis::script restore_dead_script = make_script(lua::restore_dead);

  template <class T>
  asio::awaitable<T> run_script(const redis::script& s, unsigned shard,
                                std::vector<std::string> args, const char* what,
                                redis::request::config cfg = {}) {
    redis::response<T> resp;
    co_await s.exec(conn, keys[shard], std::move(args), resp, cfg);
    co_return value_or_throw(std::get<0>(resp), what);
  }

  // run_script on a shard's keys followed by the limits' `extra` keys.
  template <class T>
  asio::awaitable<T> run_limited(const redis::script& s, unsigned shard,
                                 const std::vector<std::string>& extra,
                                 std::vector<std::string> args, const char* what,
                                 redis::request::config cfg = {}) {
    redis::response<T> resp;
    co_await s.exec(conn, keys_with(shard, extra), std::move(args), resp, cfg);
    co_return value_or_throw(std::get<0>(resp), what);
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
      redis::response<T> plain;
      co_await s.exec(conn, std::move(call_keys), std::move(args), plain);
      co_return value_or_throw(std::get<0>(plain), what);
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

redis_store::redis_store(redis::client& commands, redis::client_config subscriber,
                         redis_store_options options)
    : impl_(std::make_unique<impl>(*this, commands, std::move(subscriber), std::move(options))) {}

redis_store::~redis_store() = default;

const redis_store_options& redis_store::options() const noexcept {
  return impl_->options;
}

unsigned redis_store::shards() const noexcept {
  return impl_->options.shards;
}

unsigned redis_store::shard_of(std::string_view id) const noexcept {
  return impl_->shard_for(id);
}

std::string redis_store::events_key(unsigned shard) const {
  return impl_->keys.at(shard).at(12);
}

asio::awaitable<std::unique_ptr<event_reader>> redis_store::events(event_query query) {
  co_await impl_->open();
  std::vector<std::string> streams;
  for (const auto& k : impl_->keys) {
    streams.push_back(k.at(12));
  }
  co_return co_await detail::make_redis_event_reader(impl_->conn, std::move(streams),
                                                     std::move(query));
}

std::vector<std::string> redis_store::keys_of(unsigned shard) const {
  const auto& k = impl_->keys.at(shard);
  return {k.begin(), k.begin() + 12};  // the events stream is events_key()
}

std::string redis_store::shard_count_key() const {
  return impl_->shard_count_key();
}

asio::awaitable<void> redis_store::open() {
  co_await impl_->open();
}

asio::awaitable<void> redis_store::schedule(task t) {
  co_await schedule_as(std::move(t), false);
}

asio::awaitable<bool> redis_store::schedule_if_absent(task t) {
  co_return co_await schedule_as(std::move(t), true);
}

asio::awaitable<bool> redis_store::schedule_as(task t, bool if_absent) {
  if (t.id.empty()) {
    throw std::invalid_argument("schedule: the task id is empty");
  }
  if (t.max_attempts == 0) {
    t.max_attempts = default_max_attempts;
  }
  if (t.retry) {
    schedule::validate(*t.retry, "task '" + t.id + "'");
  }
  co_await impl_->open();
  t.attempts = 0;
  t.last_error.clear();
  t.occurrence = t.due;
  std::vector<std::string> args{t.id, micros_text(t.due), detail::encode_record(t),
                                if_absent ? "1" : "0", impl_->events_arg};
  const auto scheduled = co_await impl_->run_durable<long long>(
      impl_->schedule_script, impl_->shard_for(t.id), std::move(args), "schedule");
  if (scheduled == 1) {
    impl_->count_events(event_kind::scheduled);
  }
  co_return scheduled == 1;
}

asio::awaitable<dedup_outcome> redis_store::schedule_deduplicated(task t, dedup_options options) {
  if (t.id.empty()) {
    throw std::invalid_argument("schedule: the task id is empty");
  }
  if (t.max_attempts == 0) {
    t.max_attempts = default_max_attempts;
  }
  if (t.retry) {
    schedule::validate(*t.retry, "task '" + t.id + "'");
  }
  if (options.window <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("task '" + t.id + "': the deduplication window must be positive");
  }
  co_await impl_->open();
  t.attempts = 0;
  t.last_error.clear();
  t.occurrence = t.due;
  const auto shard = impl_->shard_for(t.id);
  auto keys = impl_->keys[shard];
  keys.push_back(impl_->window_key(shard, t.id));
  std::vector<std::string> args{t.id,
                                micros_text(t.due),
                                detail::encode_record(t),
                                std::to_string(options.window.count()),
                                options.mode == dedup_mode::drop ? "drop" : "replace",
                                impl_->events_arg};
  const auto outcome = co_await impl_->run_durable_on<std::string>(
      impl_->schedule_dedup_script, std::move(keys), std::move(args), "schedule_deduplicated");
  if (outcome != "dropped") {
    impl_->count_events(event_kind::scheduled);
  }
  if (outcome == "replaced") {
    co_return dedup_outcome::replaced;
  }
  co_return outcome == "dropped" ? dedup_outcome::dropped : dedup_outcome::scheduled;
}

asio::awaitable<std::optional<task>> redis_store::get(std::string id) {
  co_await impl_->open();
  const auto& k = impl_->keys[impl_->shard_for(id)];
  redis::request req;
  req.push("HGET", k[1], id);
  req.push("ZSCORE", k[0], id);
  req.push("ZSCORE", k[2], id);
  req.push("ZSCORE", k[4], id);
  req.push("ZSCORE", k[7], id);
  req.push("ZSCORE", k[9], id);   // due:high
  req.push("ZSCORE", k[10], id);  // due:low
  req.push("ZSCORE", k[11], id);  // held back by a limit
  redis::response<std::optional<std::string>, std::optional<double>, std::optional<double>,
                  std::optional<double>, std::optional<double>, std::optional<double>,
                  std::optional<double>, std::optional<double>>
      resp;
  co_await impl_->conn.exec(req, resp);
  const auto& record = value_or_throw(std::get<0>(resp), "get");
  if (!record) {
    co_return std::nullopt;
  }
  task t;
  t.id = std::move(id);
  detail::decode_record(*record, t);
  auto waiting = value_or_throw(std::get<1>(resp), "get");
  for (const auto& level :
       {value_or_throw(std::get<5>(resp), "get"), value_or_throw(std::get<6>(resp), "get"),
        value_or_throw(std::get<4>(resp), "get"), value_or_throw(std::get<7>(resp), "get")}) {
    if (!waiting) {
      waiting = level;  // another priority's due set, set aside by a pause or held back
    }
  }
  if (waiting) {
    t.state = task_state::scheduled;
    t.due = from_micros(*waiting);
    default_occurrence(t);
  } else if (value_or_throw(std::get<2>(resp), "get")) {
    t.state = task_state::in_flight;
  } else if (value_or_throw(std::get<3>(resp), "get")) {
    t.state = task_state::dead;
  }
  co_return t;
}

namespace {

// Reads the records of `members` (all from one shard) into tasks with `state`.
asio::awaitable<std::vector<task>> load_tasks(redis::client& conn, const std::string& tasks_key,
                                              std::vector<std::pair<std::string, double>> members,
                                              task_state state) {
  std::vector<task> out;
  if (members.empty()) {
    co_return out;
  }
  std::vector<std::string> ids;
  for (const auto& m : members) {
    ids.push_back(m.first);
  }
  redis::request req;
  req.push("HMGET", tasks_key, ids);
  redis::response<std::vector<std::optional<std::string>>> resp;
  co_await conn.exec(req, resp);
  const auto& records = value_or_throw(std::get<0>(resp), "load");
  for (std::size_t i = 0; i < members.size() && i < records.size(); ++i) {
    if (!records[i]) {
      continue;  // removed between the two reads
    }
    task t;
    t.id = members[i].first;
    try {
      detail::decode_record(*records[i], t);
    } catch (const std::exception& e) {
      t = task{};  // listed with the reason rather than failing the whole page
      t.id = members[i].first;
      t.last_error = std::string("undecodable task record: ") + e.what();
    }
    t.state = state;
    if (state == task_state::scheduled) {
      t.due = from_micros(members[i].second);
      default_occurrence(t);
    }
    out.push_back(std::move(t));
  }
  co_return out;
}

// Entries read (and records loaded) per round trip when listing.
constexpr std::size_t page_batch = 256;

struct listed {
  std::string id;
  double score;
  unsigned shard;
};

// Loads the records of `chosen` (one HMGET per shard, at most page_batch ids each) and
// appends them to `out` in the order of `chosen`.
asio::awaitable<void> load_in_order(redis::client& conn,
                                    const std::vector<std::vector<std::string>>& keys,
                                    const std::vector<listed>& chosen, task_state state,
                                    std::vector<task>& out) {
  std::map<std::pair<unsigned, std::string>, task> loaded;
  for (unsigned s = 0; s < keys.size(); ++s) {
    std::vector<std::pair<std::string, double>> members;
    for (const auto& c : chosen) {
      if (c.shard == s) {
        members.emplace_back(c.id, c.score);
      }
    }
    auto tasks = co_await load_tasks(conn, keys[s][1], std::move(members), state);
    for (auto& t : tasks) {
      auto key = std::make_pair(s, t.id);
      loaded.emplace(std::move(key), std::move(t));
    }
  }
  for (const auto& c : chosen) {
    const auto it = loaded.find(std::make_pair(c.shard, c.id));
    if (it != loaded.end()) {
      out.push_back(std::move(it->second));
    }
  }
}

// Entries offset .. offset+limit-1 of the sorted sets `keys[s][set]` of every shard merged
// (ascending by score, or descending with `reverse`; ties by id the same way), read
// page_batch entries per shard per round trip: a k-way merge that never asks for a whole set.
asio::awaitable<std::vector<task>> merged_page(redis::client& conn,
                                               const std::vector<std::vector<std::string>>& keys,
                                               std::size_t set, bool reverse, std::size_t offset,
                                               std::size_t limit, task_state state) {
  std::vector<task> out;
  const auto shards = static_cast<unsigned>(keys.size());
  std::vector<std::deque<std::pair<std::string, double>>> buffered(shards);
  std::vector<long long> next(shards, 0);
  std::vector<bool> exhausted(shards, false);
  std::vector<listed> chosen;
  std::size_t skipped = 0;
  const auto before = [reverse](const std::pair<std::string, double>& a,
                                const std::pair<std::string, double>& b) {
    if (a.second != b.second) {
      return reverse ? a.second > b.second : a.second < b.second;
    }
    return reverse ? a.first > b.first : a.first < b.first;
  };
  while (out.size() + chosen.size() < limit) {
    for (unsigned s = 0; s < shards; ++s) {
      if (!buffered[s].empty() || exhausted[s]) {
        continue;
      }
      redis::request req;
      const long long last = next[s] + static_cast<long long>(page_batch) - 1;
      if (reverse) {
        req.push("ZRANGE", keys[s][set], next[s], last, "REV", "WITHSCORES");
      } else {
        req.push("ZRANGE", keys[s][set], next[s], last, "WITHSCORES");
      }
      redis::generic_response nodes;
      co_await conn.exec(req, nodes);
      auto got = scored_members(nodes);
      next[s] += static_cast<long long>(page_batch);
      exhausted[s] = got.size() < page_batch;
      for (auto& g : got) {
        buffered[s].push_back(std::move(g));
      }
    }
    unsigned best = shards;
    for (unsigned s = 0; s < shards; ++s) {
      if (!buffered[s].empty() &&
          (best == shards || before(buffered[s].front(), buffered[best].front()))) {
        best = s;
      }
    }
    if (best == shards) {
      break;
    }
    auto entry = std::move(buffered[best].front());
    buffered[best].pop_front();
    if (skipped < offset) {
      ++skipped;
      continue;
    }
    chosen.push_back({std::move(entry.first), entry.second, best});
    if (chosen.size() == page_batch) {
      co_await load_in_order(conn, keys, chosen, state, out);
      chosen.clear();
    }
  }
  co_await load_in_order(conn, keys, chosen, state, out);
  co_return out;
}

}  // namespace

asio::awaitable<std::vector<task>> redis_store::browse(std::size_t offset, std::size_t limit) {
  co_await impl_->open();
  // Each shard's due sets (one per priority), its parked set (due tasks of a paused type)
  // and its held set (due tasks waiting for a permit) are sources of the merge, all reading
  // records from the shard's tasks hash.
  std::vector<std::vector<std::string>> sources;
  for (const auto& k : impl_->keys) {
    for (const std::size_t set :
         {std::size_t{0}, std::size_t{7}, std::size_t{9}, std::size_t{10}, std::size_t{11}}) {
      sources.push_back(k);
      sources.back()[0] = k[set];
    }
  }
  co_return co_await merged_page(impl_->conn, sources, 0, false, offset, limit,
                                 task_state::scheduled);
}

asio::awaitable<bool> redis_store::cancel(std::string id) {
  co_await impl_->open();
  const auto shard = impl_->shard_for(id);
  std::vector<std::string> args{std::move(id), impl_->events_arg};
  const bool cancelled = co_await impl_->run_durable<long long>(impl_->cancel_script, shard,
                                                                std::move(args), "cancel") == 1;
  if (cancelled) {
    impl_->count_events(event_kind::cancelled);
  }
  co_return cancelled;
}

asio::awaitable<bool> redis_store::reschedule(std::string id, time_point due) {
  co_await impl_->open();
  const auto shard = impl_->shard_for(id);
  std::vector<std::string> args{std::move(id), micros_text(due), impl_->events_arg};
  const bool moved = co_await impl_->run_script<long long>(impl_->reschedule_script, shard,
                                                           std::move(args), "reschedule") == 1;
  if (moved) {
    impl_->count_events(event_kind::scheduled);
  }
  co_return moved;
}

asio::awaitable<store_stats> redis_store::stats() {
  co_await impl_->open();
  store_stats total;
  const auto now_text = micros_text(now());
  for (unsigned s = 0; s < shards(); ++s) {
    const auto& k = impl_->keys[s];
    redis::request req;
    req.push("ZCARD", k[0]);
    req.push("ZCOUNT", k[0], "-inf", now_text);
    req.push("ZCARD", k[2]);
    req.push("ZCARD", k[4]);
    req.push("ZCARD", k[7]);  // parked: due tasks of a paused type
    req.push("ZCARD", k[9]);  // due:high
    req.push("ZCOUNT", k[9], "-inf", now_text);
    req.push("ZCARD", k[10]);  // due:low
    req.push("ZCOUNT", k[10], "-inf", now_text);
    req.push("ZCARD", k[11]);  // held back by a limit (due)
    redis::response<long long, long long, long long, long long, long long, long long, long long,
                    long long, long long, long long>
        resp;
    co_await impl_->conn.exec(req, resp);
    total.scheduled += static_cast<std::uint64_t>(value_or_throw(std::get<0>(resp), "stats"));
    total.due_now += static_cast<std::uint64_t>(value_or_throw(std::get<1>(resp), "stats"));
    total.in_flight += static_cast<std::uint64_t>(value_or_throw(std::get<2>(resp), "stats"));
    total.dead += static_cast<std::uint64_t>(value_or_throw(std::get<3>(resp), "stats"));
    const auto parked = static_cast<std::uint64_t>(value_or_throw(std::get<4>(resp), "stats"));
    total.scheduled += parked;
    total.due_now += parked;
    total.scheduled += static_cast<std::uint64_t>(value_or_throw(std::get<5>(resp), "stats") +
                                                  value_or_throw(std::get<7>(resp), "stats"));
    total.due_now += static_cast<std::uint64_t>(value_or_throw(std::get<6>(resp), "stats") +
                                                value_or_throw(std::get<8>(resp), "stats"));
    const auto held = static_cast<std::uint64_t>(value_or_throw(std::get<9>(resp), "stats"));
    total.scheduled += held;
    total.due_now += held;
    total.held += held;
  }
  co_return total;
}

asio::awaitable<claim_result> redis_store::claim(unsigned shard, std::size_t limit,
                                                 std::chrono::milliseconds lease) {
  co_await impl_->open();
  std::vector<std::string> args{
      std::to_string(limit),
      std::to_string(lease.count()),
      std::to_string(impl_->options.dead_max_count),
      std::to_string(std::chrono::duration_cast<micros>(impl_->options.dead_max_age).count()),
      claim_nonce(),
      std::to_string(std::chrono::duration_cast<micros>(impl_->options.priority_aging).count()),
      std::to_string(impl_->options.claim_ahead.count()),
      std::to_string(impl_->limit_types.size())};
  args.insert(args.end(), impl_->claim_limit_args.begin(), impl_->claim_limit_args.end());
  args.push_back(impl_->events_arg);
  const auto reply = co_await impl_->run_limited<std::vector<std::string>>(
      impl_->claim_script, shard, impl_->claim_limit_keys, std::move(args), "claim");
  if (reply.size() < 5 || (reply.size() - 5) % 4 != 0) {
    throw std::runtime_error("redis_store claim: malformed reply of " +
                             std::to_string(reply.size()) + " elements");
  }
  claim_result out;
  out.store_now = *parse_time(reply[0]);
  out.next_due = parse_time(reply[1]);
  out.ahead = impl_->options.claim_ahead;
  out.next_lease_expiry = parse_time(reply[2]);
  out.permit_at = parse_time(reply[3]);
  impl_->count_reported(reply[4], "claim");
  for (std::size_t i = 5; i < reply.size(); i += 4) {
    claimed_task c;
    c.shard = shard;
    c.claimed_at = out.store_now;
    c.work.id = reply[i];
    c.token = reply[i + 1];
    c.work.due = *parse_time(reply[i + 2]);
    c.work.state = task_state::in_flight;
    try {
      detail::decode_record(reply[i + 3], c.work);
      default_occurrence(c.work);
    } catch (const std::exception& e) {
      // A record this code cannot read stays claimed with its reason; the dispatcher
      // dead-letters it instead of crashing.
      c.work.type.clear();
      c.work.last_error = std::string("undecodable task record: ") + e.what();
    }
    out.tasks.push_back(std::move(c));
  }
  co_return out;
}

asio::awaitable<std::size_t> redis_store::ack(unsigned shard, std::vector<completion> done) {
  if (done.empty()) {
    co_return 0;
  }
  co_await impl_->open();
  std::vector<std::string> args{std::to_string(impl_->limit_types.size())};
  args.insert(args.end(), impl_->limit_types.begin(), impl_->limit_types.end());
  args.push_back(impl_->events_arg);
  args.reserve(args.size() + done.size() * 3);
  for (auto& c : done) {
    args.push_back(std::move(c.id));
    args.push_back(std::move(c.token));
    args.push_back(c.next_due ? micros_text(*c.next_due) : std::string());
  }
  // Never waits for a connection: a dispatcher's acker retries, and a stopping one gives up
  // on a store it cannot reach (the tasks run again when their leases expire).
  redis::request::config unwaiting;
  unwaiting.fail_if_not_connected = true;
  using reply_type = std::vector<std::string>;  // {acked, events written}
  reply_type reply;
  if (!impl_->limit_types.empty()) {
    if (impl_->options.wait_replicas > 0) {
      reply = co_await impl_->run_durable_on<reply_type>(
          impl_->ack_script, impl_->keys_with(shard, impl_->release_limit_keys), std::move(args),
          "ack");
    } else {
      reply = co_await impl_->run_limited<reply_type>(
          impl_->ack_script, shard, impl_->release_limit_keys, std::move(args), "ack", unwaiting);
    }
  } else {
    reply = co_await impl_->run_durable<reply_type>(impl_->ack_script, shard, std::move(args),
                                                    "ack", unwaiting);
  }
  co_return static_cast<std::size_t>(impl_->count_outcome(reply, "ack"));
}

asio::awaitable<bool> redis_store::nack(unsigned shard, failure failed) {
  co_await impl_->open();
  std::vector<std::string> args{
      std::move(failed.id),
      std::move(failed.token),
      detail::one_line(failed.error),
      failed.retry_in ? std::to_string(failed.retry_in->count()) : std::string(),
      std::to_string(impl_->options.dead_max_count),
      std::to_string(std::chrono::duration_cast<micros>(impl_->options.dead_max_age).count()),
      std::to_string(impl_->limit_types.size())};
  args.insert(args.end(), impl_->limit_types.begin(), impl_->limit_types.end());
  args.push_back(impl_->events_arg);
  // Never waits for a connection (as ack): the dispatcher retries, and a stopping one gives
  // up on a store it cannot reach.
  redis::request::config unwaiting;
  unwaiting.fail_if_not_connected = true;
  const auto reply = co_await impl_->run_limited<std::vector<std::string>>(
      impl_->nack_script, shard, impl_->release_limit_keys, std::move(args), "nack", unwaiting);
  co_return impl_->count_outcome(reply, "nack") == 1;
}

asio::awaitable<std::vector<bool>> redis_store::extend(unsigned shard,
                                                       std::vector<lease_ref> leases,
                                                       std::chrono::milliseconds lease) {
  std::vector<bool> held;
  if (leases.empty()) {
    co_return held;
  }
  co_await impl_->open();
  const auto count = leases.size();
  std::vector<std::string> args{std::to_string(lease.count()),
                                std::to_string(impl_->limit_types.size())};
  for (auto& l : leases) {
    args.push_back(std::move(l.id));
    args.push_back(std::move(l.token));
  }
  const auto reply = co_await impl_->run_limited<std::vector<std::string>>(
      impl_->extend_script, shard, impl_->release_limit_keys, std::move(args), "extend");
  if (reply.size() != count) {
    throw std::runtime_error("redis_store extend: " + std::to_string(reply.size()) +
                             " answers for " + std::to_string(count) + " leases");
  }
  for (const auto& r : reply) {
    held.push_back(r == "1");
  }
  co_return held;
}

namespace {

std::string pause_member(const std::string& type) {
  if (type == "*" || type.find('\n') != std::string::npos) {
    throw std::invalid_argument("pause: '" + type + "' is not a task type");
  }
  return type.empty() ? "*" : type;
}

}  // namespace

asio::awaitable<void> redis_store::pause(std::string type) {
  const auto member = pause_member(type);
  co_await impl_->open();
  for (unsigned s = 0; s < shards(); ++s) {
    std::vector<std::string> args{member};
    co_await impl_->run_script<long long>(impl_->pause_script, s, std::move(args), "pause");
  }
}

asio::awaitable<void> redis_store::resume(std::string type) {
  const auto member = pause_member(type);
  co_await impl_->open();
  for (unsigned s = 0; s < shards(); ++s) {
    std::vector<std::string> args{member};
    co_await impl_->run_script<long long>(impl_->resume_script, s, std::move(args), "resume");
  }
}

asio::awaitable<pause_state> redis_store::paused() {
  co_await impl_->open();
  redis::request req;
  req.push("SMEMBERS", impl_->keys[0][8]);
  redis::response<std::vector<std::string>> resp;
  co_await impl_->conn.exec(req, resp);
  auto members = value_or_throw(std::get<0>(resp), "paused");
  std::sort(members.begin(), members.end());
  pause_state out;
  for (auto& m : members) {
    if (m == "*") {
      out.all = true;
    } else {
      out.types.push_back(std::move(m));
    }
  }
  co_return out;
}

asio::awaitable<std::vector<task>> redis_store::dead_letters(std::size_t offset,
                                                             std::size_t limit) {
  co_await impl_->open();
  co_return co_await merged_page(impl_->conn, impl_->keys, 4, true, offset, limit,
                                 task_state::dead);
}

asio::awaitable<std::vector<task>> redis_store::in_flight(std::size_t offset, std::size_t limit) {
  co_await impl_->open();
  co_return co_await merged_page(impl_->conn, impl_->keys, 2, false, offset, limit,
                                 task_state::in_flight);
}

asio::awaitable<void> redis_store::restore(task t) {
  if (t.id.empty()) {
    throw std::invalid_argument("restore: the task id is empty");
  }
  if (t.max_attempts == 0) {
    throw std::invalid_argument("task '" + t.id + "': max_attempts must be at least 1");
  }
  if (t.retry) {
    schedule::validate(*t.retry, "task '" + t.id + "'");
  }
  co_await impl_->open();
  if (t.occurrence == time_point{}) {
    t.occurrence = t.due;
  }
  const auto shard = impl_->shard_for(t.id);
  if (t.state == task_state::dead) {
    std::vector<std::string> args{
        t.id, detail::encode_record(t), std::to_string(impl_->options.dead_max_count),
        std::to_string(std::chrono::duration_cast<micros>(impl_->options.dead_max_age).count())};
    co_await impl_->run_durable<long long>(impl_->restore_dead_script, shard, std::move(args),
                                           "restore");
    co_return;
  }
  // Scheduled, or in flight when exported (its run may not have finished): waiting again.
  const time_point due = t.due != time_point{} ? t.due : t.occurrence;
  std::vector<std::string> args{t.id, micros_text(due), detail::encode_record(t), "0",
                                impl_->events_arg};
  co_await impl_->run_durable<long long>(impl_->schedule_script, shard, std::move(args), "restore");
  impl_->count_events(event_kind::scheduled);
}

asio::awaitable<bool> redis_store::replay(std::string id) {
  co_await impl_->open();
  const auto shard = impl_->shard_for(id);
  std::vector<std::string> args{std::move(id), impl_->events_arg};
  const bool replayed = co_await impl_->run_script<long long>(impl_->replay_script, shard,
                                                              std::move(args), "replay") == 1;
  if (replayed) {
    impl_->count_events(event_kind::scheduled);
  }
  co_return replayed;
}

asio::awaitable<std::size_t> redis_store::purge(std::string id) {
  co_await impl_->open();
  std::size_t removed = 0;
  for (unsigned s = 0; s < shards(); ++s) {
    if (!id.empty() && s != impl_->shard_for(id)) {
      continue;
    }
    std::vector<std::string> args{id};
    removed += static_cast<std::size_t>(
        co_await impl_->run_script<long long>(impl_->purge_script, s, std::move(args), "purge"));
  }
  co_return removed;
}

void redis_store::set_limits(type_limits limits) {
  impl_->set_limits(std::move(limits));
}

asio::awaitable<std::vector<limit_state>> redis_store::limit_states() {
  co_await impl_->open();
  std::vector<limit_state> out;
  const auto now_us = now().time_since_epoch().count();
  for (const auto& [type, limit] : impl_->limits) {
    limit_state st;
    st.type = type;
    st.limit = limit;
    const auto window =
        limit.rate ? std::chrono::duration_cast<micros>(limit.rate->per).count() : 0;
    redis::request req;
    req.push("ZCOUNT", impl_->limit_key(type, "running"), "(" + std::to_string(now_us), "+inf");
    req.push("ZCOUNT", impl_->limit_key(type, "starts"), "(" + std::to_string(now_us - window),
             "+inf");
    redis::response<long long, long long> counts;
    co_await impl_->conn.exec(req, counts);
    st.running = static_cast<std::uint64_t>(value_or_throw(std::get<0>(counts), "limit_states"));
    if (limit.rate) {
      st.recent_starts =
          static_cast<std::uint64_t>(value_or_throw(std::get<1>(counts), "limit_states"));
    }
    for (unsigned s = 0; s < shards(); ++s) {
      redis::request card;
      card.push("ZCARD", impl_->keys[s][11] + ":" + type);
      redis::response<long long> held;
      co_await impl_->conn.exec(card, held);
      st.held += static_cast<std::uint64_t>(value_or_throw(std::get<0>(held), "limit_states"));
    }
    out.push_back(std::move(st));
  }
  co_return out;
}

asio::awaitable<void> redis_store::watch_wakes(std::function<void(unsigned shard)> on_wake) {
  co_await impl_->open();
  auto executor = co_await asio::this_coro::executor;
  redis::client subscriber(executor, impl_->subscriber);
  task_group group(executor);
  co_await group.spawn(run_client(subscriber));
  std::exception_ptr ended_by;
  try {
    redis::request subscribe;
    std::vector<std::string> channels;
    for (const auto& k : impl_->keys) {
      channels.push_back(k[6]);
    }
    subscribe.push("SSUBSCRIBE", channels);
    co_await subscriber.exec(subscribe);
    for (;;) {
      const auto push = co_await subscriber.receive();
      // [smessage, channel, payload]: the first node is the push aggregate itself.
      if (push.size() >= 4 && push[1].value == "smessage") {
        const auto it = impl_->channel_to_shard.find(push[2].value);
        if (it != impl_->channel_to_shard.end()) {
          on_wake(it->second);
        }
      }
    }
  } catch (...) {
    ended_by = std::current_exception();
  }
  // The reset below also clears the caller's pending cancellation (the state belongs to the
  // whole coroutine thread), so a cancelled watch must end as operation_aborted whatever
  // error the subscriber reported, or the caller would take it for a lost subscription and
  // watch again, forever.
  const auto cancellation = co_await asio::this_coro::cancellation_state;
  if (cancellation.cancelled() != asio::cancellation_type::none) {
    ended_by = std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted));
  }
  co_await asio::this_coro::reset_cancellation_state();
  subscriber.cancel();
  co_await group.join();
  std::rethrow_exception(ended_by);
}

}  // namespace corvo::schedule
