#pragma once
// The middleware's half of access_events: what an access event is, how a request path is
// classified, and the buffer that appends events to the Redis stream without ever holding
// up a response.

#include <boost/asio/awaitable.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/notifier.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/stream/entry.hpp>
#include <corvo/stream/producer.hpp>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace access_events {

namespace asio = boost::asio;

/// One request as the access log records it.
struct access_event {
  std::string event_id;  ///< unique per request: "<process tag>-<sequence>"
  std::string category;  ///< from classify()
  std::string method;
  std::string path;
  int status = 0;
  std::int64_t at_ms = 0;  ///< when the request was served, ms since the epoch
};

/// The categories classify() returns, in the order the category API lists them.
const std::vector<std::string>& categories();

/// The access category of a request path (the query string is ignored). The first matching
/// prefix wins: /admin/api/v1/event/ → "admin.event", /admin/api/v1/users → "admin.user",
/// /admin/api/v1/settings → "admin.settings", other /admin/ → "admin.other", /api/ → "api",
/// /static/ → "static", anything else → "page".
std::string classify(std::string_view path);

/// The event's stream fields (event_id, category, method, path, status, at) and back.
std::vector<std::string> to_fields(const access_event& e);
/// Throws std::invalid_argument when a field is missing or malformed.
access_event from_entry(const corvo::stream::entry& entry);

struct event_buffer_options {
  std::string stream = "access-events";
  /// Events held while Redis is slow or down; beyond this, new events are dropped (counted).
  std::size_t limit = 100'000;
  /// Most XADDs in one pipelined request.
  std::size_t batch = 512;
  /// Pause after a failed append before the next attempt.
  corvo::backoff_policy retry{std::chrono::milliseconds{20}, std::chrono::milliseconds{1000}};
};

struct event_buffer_stats {
  std::uint64_t recorded = 0;         ///< events handed to record()
  std::uint64_t appended = 0;         ///< events Redis acknowledged (XADD replied)
  std::uint64_t dropped = 0;          ///< events refused because the buffer was full
  std::uint64_t failed_attempts = 0;  ///< pipelined appends that failed (and were retried)
};

/// A bounded in-memory queue of events and the coroutine that drains it into the stream.
/// record() never waits and never fails; run() appends in pipelined batches (one request
/// of up to `batch` XADDs), removes events only once Redis replied, and retries a failed
/// batch with backoff (an XADD whose reply was lost may then be appended twice: consumers
/// de-duplicate by event_id).
class event_buffer {
 public:
  event_buffer(corvo::redis::client& redis, event_buffer_options options);

  /// Queues `e` (or counts it as dropped when the buffer is full). Never blocks.
  void record(access_event e);
  /// Appends until cancelled (terminal), then throws operation_aborted.
  asio::awaitable<void> run();

  std::size_t buffered() const noexcept { return queue_.size(); }
  const event_buffer_stats& stats() const noexcept { return stats_; }

 private:
  corvo::redis::client& redis_;
  corvo::stream::producer producer_;
  event_buffer_options options_;
  std::deque<access_event> queue_;
  event_buffer_stats stats_;
  corvo::notifier wake_;  // record() wakes run() waiting for events
};

}  // namespace access_events
