// The Redis store's event reader: background loops (one per dedicated connection) read the
// shards' streams with XREAD BLOCK into a buffer per shard; fetch() merges the buffers by
// event time. Standalone: one loop over every stream; cluster: one loop per shard (the
// streams are in different slots, so one XREAD cannot name them all).
#include "redis_events.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/core/log.hpp>
#include <cstdlib>
#include <deque>
#include <exception>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>

namespace corvo::schedule::detail {
namespace {

using namespace std::chrono_literals;

// Replies: an entry is [id, fields]; XREAD gives nil on timeout, else stream -> entries.
using reply_fields = std::optional<std::vector<std::string>>;
using reply_entries = std::vector<std::pair<std::string, reply_fields>>;
using read_reply = std::optional<std::vector<std::pair<std::string, reply_entries>>>;

constexpr auto block_chunk = 1000ms;     // one XREAD BLOCK of a loop
constexpr std::size_t read_count = 512;  // entries per stream per XREAD
constexpr std::size_t ready_cap = 8192;  // a loop pauses while this many wait to be read
constexpr auto retry_after = 500ms;      // after a failed XREAD

const auto channel = "schedule.events";

time_point from_micros_text(const std::string& text) {
  return time_point(std::chrono::microseconds(std::strtoll(text.c_str(), nullptr, 10)));
}

bool is_entry_id(std::string_view id) {
  const auto dash = id.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == id.size()) {
    return false;
  }
  for (std::size_t i = 0; i < id.size(); ++i) {
    if (i != dash && (id[i] < '0' || id[i] > '9')) {
      return false;
    }
  }
  return true;
}

struct shared_state {
  asio::any_io_executor executor;
  std::vector<std::string> keys;              // per shard
  std::vector<std::deque<task_event>> ready;  // per shard: read, not yet handed out
  std::size_t ready_total = 0;
  std::set<asio::steady_timer*> readers;  // fetch() waiting for events
  std::set<asio::steady_timer*> loops;    // loops waiting for room
  std::exception_ptr error;               // the last failed read, for fetch() to throw
  bool stopped = false;

  static void wake(std::set<asio::steady_timer*>& waiting) {
    for (auto* t : waiting) {
      t->cancel();
    }
  }
};

// Waits up to `d`, or until woken through `set`.
asio::awaitable<void> wait_on(std::shared_ptr<shared_state> s, std::set<asio::steady_timer*>* set,
                              std::chrono::milliseconds d) {
  asio::steady_timer timer(s->executor, d);
  set->insert(&timer);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  set->erase(&timer);
}

asio::awaitable<void> keep_running(std::shared_ptr<redis::client> c) {
  co_await c->run();
}

// Appends the entries of an XREAD / XREVRANGE reply of stream `shard`; returns the last id.
std::optional<std::string> take_entries(shared_state& s, unsigned shard, reply_entries& entries) {
  std::optional<std::string> last;
  for (auto& [id, fields] : entries) {
    last = id;
    if (!fields) {
      continue;
    }
    try {
      s.ready[shard].push_back(decode_event(shard, id, *fields));
      ++s.ready_total;
    } catch (const std::exception& e) {
      CORVO_LOG(warning, channel) << "skipping entry " << id << " of " << s.keys[shard] << ": "
                                  << e.what();
    }
  }
  return last;
}

// One loop: reads the streams of `shards` over `conn` from `cursors` on, until stopped.
asio::awaitable<void> read_loop(std::shared_ptr<shared_state> s,
                                std::shared_ptr<redis::client> conn, std::vector<unsigned> shards,
                                std::vector<std::string> cursors) {
  while (!s->stopped) {
    if (s->ready_total >= ready_cap) {
      co_await wait_on(s, &s->loops, 1s);
      continue;
    }
    std::vector<std::string> keys;
    for (const auto shard : shards) {
      keys.push_back(s->keys[shard]);
    }
    redis::request req;
    req.push("XREAD", "COUNT", read_count, "BLOCK", block_chunk.count(), "STREAMS", keys, cursors);
    redis::response<read_reply> resp;
    std::exception_ptr failed;
    try {
      co_await conn->exec(req, resp);
    } catch (...) {
      failed = std::current_exception();
    }
    if (failed && !s->stopped) {
      s->error = failed;
      shared_state::wake(s->readers);
      co_await wait_on(s, &s->loops, retry_after);
      continue;
    }
    if (s->stopped) {
      co_return;
    }
    auto& r = std::get<0>(resp);
    if (!r.has_value()) {
      s->error =
          std::make_exception_ptr(std::runtime_error("events: XREAD failed: " + r.error().message));
      shared_state::wake(s->readers);
      co_await wait_on(s, &s->loops, retry_after);
      continue;
    }
    if (!*r) {
      continue;  // BLOCK timed out
    }
    for (auto& [key, entries] : **r) {
      for (std::size_t i = 0; i < shards.size(); ++i) {
        if (s->keys[shards[i]] == key) {
          if (auto last = take_entries(*s, shards[i], entries)) {
            cursors[i] = std::move(*last);
          }
        }
      }
    }
    shared_state::wake(s->readers);
  }
}

void log_end(std::exception_ptr e) {
  if (!e) {
    return;
  }
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& error) {
    CORVO_LOG(debug, channel) << "event read loop ended: " << error.what();
  }
}

class redis_event_reader final : public event_reader {
 public:
  redis_event_reader(redis::client& commands, std::vector<std::string> keys, event_query query,
                     std::vector<std::string> start)
      : event_reader(std::move(query), start), commands_(commands), cursors_(std::move(start)) {
    s_ = std::make_shared<shared_state>();
    s_->executor = commands.get_executor();
    s_->keys = std::move(keys);
    s_->ready.resize(s_->keys.size());
  }

  ~redis_event_reader() override {
    s_->stopped = true;
    for (auto& c : clients_) {
      c->cancel();
    }
    shared_state::wake(s_->loops);
  }

 protected:
  asio::awaitable<std::vector<task_event>> fetch(std::size_t max,
                                                 std::chrono::milliseconds wait) override {
    throw_error();
    if (clients_.empty() && wait <= std::chrono::milliseconds::zero()) {
      co_await read_now();  // nothing started yet: what the streams hold now
    }
    auto out = take(max);
    if (!out.empty() || wait <= std::chrono::milliseconds::zero()) {
      co_return out;
    }
    start_loops();
    co_await wait_on(s_, &s_->readers, wait);
    const auto cancellation = co_await asio::this_coro::cancellation_state;
    if (cancellation.cancelled() != asio::cancellation_type::none) {
      throw boost::system::system_error(asio::error::operation_aborted);
    }
    throw_error();
    co_return take(max);
  }

 private:
  void throw_error() {
    if (s_->error) {
      auto e = std::exchange(s_->error, nullptr);
      std::rethrow_exception(e);
    }
  }

  // Before the loops start: one non-blocking XREAD per shard from the cursors.
  asio::awaitable<void> read_now() {
    for (unsigned shard = 0; shard < s_->keys.size(); ++shard) {
      redis::request req;
      req.push("XREAD", "COUNT", read_count, "STREAMS", s_->keys[shard], cursors_[shard]);
      redis::response<read_reply> resp;
      co_await commands_.exec(req, resp);
      auto& r = std::get<0>(resp);
      if (!r.has_value()) {
        throw std::runtime_error("events: XREAD failed: " + r.error().message);
      }
      if (!*r) {
        continue;
      }
      for (auto& [key, entries] : **r) {
        if (auto last = take_entries(*s_, shard, entries)) {
          cursors_[shard] = std::move(*last);
        }
      }
    }
  }

  void start_loops() {
    if (!clients_.empty()) {
      return;
    }
    const auto shards = static_cast<unsigned>(s_->keys.size());
    std::vector<std::vector<unsigned>> groups;
    if (commands_.is_cluster()) {
      for (unsigned shard = 0; shard < shards; ++shard) {
        groups.push_back({shard});
      }
    } else {
      groups.emplace_back();
      for (unsigned shard = 0; shard < shards; ++shard) {
        groups.back().push_back(shard);
      }
    }
    for (auto& group : groups) {
      std::shared_ptr<redis::client> conn = commands_.dedicated();
      clients_.push_back(conn);
      std::vector<std::string> cursors;
      for (const auto shard : group) {
        cursors.push_back(cursors_[shard]);
      }
      asio::co_spawn(s_->executor, keep_running(conn), log_end);
      asio::co_spawn(s_->executor, read_loop(s_, conn, std::move(group), std::move(cursors)),
                     log_end);
    }
  }

  // Up to `max` buffered events, the shards merged by event time (each shard in order).
  std::vector<task_event> take(std::size_t max) {
    std::vector<task_event> out;
    auto& ready = s_->ready;
    while (out.size() < max) {
      std::size_t best = ready.size();
      for (std::size_t shard = 0; shard < ready.size(); ++shard) {
        if (!ready[shard].empty() &&
            (best == ready.size() || ready[shard].front().at < ready[best].front().at)) {
          best = shard;
        }
      }
      if (best == ready.size()) {
        break;
      }
      out.push_back(std::move(ready[best].front()));
      ready[best].pop_front();
      --s_->ready_total;
    }
    if (!out.empty()) {
      shared_state::wake(s_->loops);
    }
    return out;
  }

  redis::client& commands_;
  std::vector<std::string> cursors_;  // per shard, before the loops start
  std::shared_ptr<shared_state> s_;
  std::vector<std::shared_ptr<redis::client>> clients_;
};

}  // namespace

task_event decode_event(unsigned shard, std::string position,
                        const std::vector<std::string>& fields) {
  task_event e;
  e.shard = shard;
  e.position = std::move(position);
  bool kind_seen = false;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    const auto& name = fields[i];
    const auto& value = fields[i + 1];
    if (name == "k") {
      const auto kind = parse_event_kind(value);
      if (!kind) {
        throw std::runtime_error("unknown event kind '" + value + "'");
      }
      e.kind = *kind;
      kind_seen = true;
    } else if (name == "i") {
      e.task_id = value;
    } else if (name == "y") {
      e.type = value;
    } else if (name == "t") {
      e.at = from_micros_text(value);
    } else if (name == "a") {
      e.attempt = static_cast<std::uint32_t>(std::strtoul(value.c_str(), nullptr, 10));
    } else if (name == "r") {
      e.reason = value;
    } else if (name == "d") {
      e.due = from_micros_text(value);
    } else if (name == "w") {
      e.source = value;
    }
  }
  if (!kind_seen) {
    throw std::runtime_error("an entry without an event kind");
  }
  return e;
}

asio::awaitable<std::unique_ptr<event_reader>> make_redis_event_reader(
    redis::client& commands, std::vector<std::string> stream_keys, event_query query) {
  const auto shards = static_cast<unsigned>(stream_keys.size());
  std::vector<std::string> start(shards, "0-0");
  if (query.from == events_from_now) {
    for (unsigned shard = 0; shard < shards; ++shard) {
      redis::request req;
      req.push("XREVRANGE", stream_keys[shard], "+", "-", "COUNT", 1);
      redis::response<reply_entries> resp;
      co_await commands.exec(req, resp);
      auto& r = std::get<0>(resp);
      if (!r.has_value()) {
        throw std::runtime_error("events: XREVRANGE failed: " + r.error().message);
      }
      if (!r->empty()) {
        start[shard] = r->front().first;
      }
    }
  } else if (query.from != events_from_start) {
    start = event_reader::split_position(query.from, shards);
    for (const auto& p : start) {
      if (!is_entry_id(p)) {
        throw std::invalid_argument("events: '" + query.from +
                                    "' is not a position of a Redis namespace ('" + p +
                                    "' is not a stream entry id)");
      }
    }
  }
  co_return std::make_unique<redis_event_reader>(commands, std::move(stream_keys), std::move(query),
                                                 std::move(start));
}

}  // namespace corvo::schedule::detail
