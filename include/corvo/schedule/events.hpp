#pragma once
// Task events: what happens to the tasks of a namespace (scheduled, started, succeeded,
// failed, dead, cancelled), written by the store in the same atomic step as the change
// itself, and readable from any process (docs/scheduler.md, "Task events").
//
// Off by default (`scheduler.events.enabled`): a store with events off writes nothing and
// pays nothing. On Redis each shard has a capped stream `{<namespace>:<shard>}:events`
// (XADD MAXLEN ~ max_len, inside the shard's scripts, so an event is written exactly when
// its change is, and each script still touches one hash slot); the memory store keeps them
// in an in-process capped buffer. Every process that writes must enable events: a process
// with events off changes tasks without events.
//
//   corvo::schedule::event_query query;          // from now, every task, every kind
//   query.task_id = "order-42";
//   auto events = co_await scheduler.events(query);
//   for (;;) {
//     const auto e = co_await events->next();     // waits; cancellation stops it
//     std::cout << to_string(e.kind) << " " << e.task_id << "\n";
//   }
//
// Order: the events of one shard (so all events of one task) are read in the order they
// were written. Across shards there is no total order: a read returns what each shard has,
// merged by event time (the store's clock, the Redis server's TIME).

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/schedule/task.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::schedule {

namespace asio = boost::asio;

/// What happened to a task.
enum class event_kind {
  scheduled,  ///< stored, replaced, rescheduled, replayed, or its next occurrence set
  started,    ///< claimed for a run (attempt = this try)
  succeeded,  ///< a run completed (attempt = the try that succeeded)
  failed,     ///< a run failed and the task will be retried (reason; attempt = that try)
  dead,       ///< dead-lettered: attempts used up or a permanent failure (reason)
  cancelled,  ///< removed by cancel()
};

/// "scheduled", "started", ...
std::string_view to_string(event_kind kind) noexcept;
/// The kind named `name`; nullopt for another word.
std::optional<event_kind> parse_event_kind(std::string_view name) noexcept;

/// One event of one task.
struct task_event {
  event_kind kind = event_kind::scheduled;
  std::string task_id;
  /// The task's type (empty when its record was gone or unreadable).
  std::string type;
  /// started / succeeded / failed / dead: the number of the try (1 = first); 0 otherwise.
  std::uint32_t attempt = 0;
  /// scheduled: when the task is due.
  std::optional<time_point> due;
  /// When it happened, by the store's clock (the Redis server's TIME; microseconds).
  time_point at{};
  /// failed / dead: the error (a handler's message, "lease expired N times (worker died or
  /// hung)", ...). scheduled: how, when not a plain schedule: "replaced" (deduplication),
  /// "rescheduled", "replayed", "next occurrence" (a recurring task's next run).
  std::string reason;
  /// The identity of the process whose store call wrote it (events_options::source;
  /// `<host>:<pid>` by default).
  std::string source;
  /// The shard whose stream holds it.
  unsigned shard = 0;
  /// Its position in that shard's stream (Redis: the stream entry id; memory: a sequence
  /// number), increasing within a shard.
  std::string position;
};

/// How a store writes events (`scheduler.events.*`).
struct events_options {
  /// Write events (`scheduler.events.enabled`, default false).
  bool enabled = false;
  /// Events kept per shard, about (Redis trims with MAXLEN ~, so a stream may hold somewhat
  /// more; the memory store keeps exactly max_len per shard). `scheduler.events.max_len`,
  /// 1 .. 100,000,000, default 10,000.
  std::size_t max_len = 10'000;
  /// Written into each event as its source; empty: `<host>:<pid>` of this process.
  std::string source;
};

/// Start reading at events written from the moment events() is called on.
inline constexpr std::string_view events_from_now = "now";
/// Start reading at the oldest event the store still holds.
inline constexpr std::string_view events_from_start = "start";

/// What an event reader reads.
struct event_query {
  /// events_from_now, events_from_start, or an event_reader::position() of an earlier reader
  /// of the same namespace (resume after it: nothing the streams still hold is missed or
  /// repeated).
  std::string from{events_from_now};
  /// Only this task's events (empty: every task).
  std::string task_id;
  /// Only tasks of this type (empty: every type).
  std::string type;
  /// Only these kinds (empty: every kind).
  std::vector<event_kind> kinds;

  /// True when `e` passes the filters.
  bool matches(const task_event& e) const;
};

/// Reads a namespace's events, every shard, in the order described in the file comment.
/// Made by store::events(). Single-consumer: one coroutine calls read()/next() at a time.
class event_reader {
 public:
  virtual ~event_reader() = default;
  event_reader(const event_reader&) = delete;
  event_reader& operator=(const event_reader&) = delete;

  /// Up to `max` (>= 1) events matching the query, after those returned before. Waits up to
  /// `wait` for the first one (zero: return what is there now: on Redis, once this reader has
  /// waited, what its connections have received so far); returns an empty
  /// vector when none came. Cancellation stops the wait and throws
  /// system_error(operation_aborted). Throws on a store failure (a connection error); the
  /// events not returned are read again by the next call.
  asio::awaitable<std::vector<task_event>> read(std::size_t max, std::chrono::milliseconds wait);

  /// The next event matching the query: waits as long as it takes (reads in batches and
  /// buffers them). Cancellation throws system_error(operation_aborted).
  asio::awaitable<task_event> next();

  /// Where this reader is (after the last event returned, and after the events the filters
  /// skipped up to it): pass it as event_query::from to resume there. The shards' positions
  /// joined by ','.
  std::string position() const;

  const event_query& query() const noexcept { return query_; }

  /// Splits a position() string into `shards` positions; throws std::invalid_argument
  /// naming it when it has another number of parts or an empty one. For stores.
  static std::vector<std::string> split_position(std::string_view position, unsigned shards);

 protected:
  /// `start`: each shard's position to read after (the store's form).
  event_reader(event_query query, std::vector<std::string> start);

  /// The store's part: up to about `max` events of every kind after those it returned before
  /// (it keeps its own cursors), waiting up to `wait` for the first; in the order of the file
  /// comment. Unfiltered: the base applies the query.
  virtual asio::awaitable<std::vector<task_event>> fetch(std::size_t max,
                                                         std::chrono::milliseconds wait) = 0;

 private:
  // Takes up to `max` matching events from the buffer, advancing the positions past every
  // event taken or skipped.
  std::vector<task_event> take(std::size_t max);

  event_query query_;
  std::vector<std::string> positions_;
  std::deque<task_event> buffered_;
};

}  // namespace corvo::schedule
