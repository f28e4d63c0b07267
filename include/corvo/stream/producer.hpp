#pragma once
// Appends entries to Redis streams, with per-stream trimming.
//
//   stream::producer out(redis);                               // a redis::client, running
//   stream::event<order_created> ev{"order.created", order, order.id, {}};
//   std::string id = co_await out.append("{orders}:events", ev);
//
// Every append is one `XADD stream [MAXLEN|MINID ~ …] * field value …` on the shared
// client, so many concurrent appends ride its automatic pipelining (one write carries all
// appends issued meanwhile). On a cluster the stream's key picks the master.
//
// Trimming (approximate, `~`, so Redis trims whole macro nodes cheaply):
//   - by length: `MAXLEN ~ max_len` keeps at least the newest max_len entries;
//   - by age:    `MINID ~ (now − retention)` drops entries older than retention (ids are
//                milliseconds since the epoch, taken from this host's clock).
// Trimming at append time does not look at consumer groups: an entry may be trimmed while a
// group still has it pending (the consumer then clears it from the group, see
// consumer.hpp). Use the retention job (docs/stream-admin.md) to trim by age without
// dropping pending entries.
//
// Failure: exec() errors of the client are thrown (system_error); an XADD that was written
// before a connection loss fails with redis::error::connection_lost and may or may not
// have been appended.

#include <boost/asio/awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>
#include <chrono>
#include <corvo/core/config.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/stream/entry.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corvo::stream {

namespace asio = boost::asio;

/// How a stream is trimmed on append. At most one of the two is set; neither: no trimming.
struct trim_policy {
  /// > 0: `MAXLEN ~ max_len`.
  std::uint64_t max_len = 0;
  /// > 0: `MINID ~ now − retention`.
  std::chrono::milliseconds retention{0};

  bool trims() const noexcept { return max_len > 0 || retention.count() > 0; }
};

struct producer_options {
  /// Trimming of streams without their own entry in `streams`.
  trim_policy trim;
  /// Per-stream trimming, by stream key.
  std::map<std::string, trim_policy, std::less<>> streams;

  /// From the application configuration, below `section` (default "stream.producer"):
  ///   max_len                    default MAXLEN ~ (unsigned; 0 = none)
  ///   retention                  default MINID ~ age ("7d" is not a duration here: use
  ///                              "168h"; ms number or "250ms"/"2s"/"5m"/"1h")
  ///   streams.<key>.max_len, streams.<key>.retention   per stream
  /// Unknown keys are rejected (config_error naming the key), and so is a policy with both.
  static producer_options from(const corvo::config& cfg,
                               std::string_view section = "stream.producer");
};

class producer {
 public:
  /// `redis` must outlive the producer and be running (client::run()).
  explicit producer(redis::client& redis, producer_options options = {});

  /// Appends the typed event `ev` to `stream` as the fields type, data (JSON), key (when
  /// not empty), the headers and traceparent (when not empty); returns the new entry's id.
  /// Throws std::invalid_argument for an invalid traceparent (before anything is sent),
  /// system_error when the client fails (see the file comment) and whatever
  /// boost::json::value_from throws.
  template <class T>
  asio::awaitable<std::string> append(std::string stream, const event<T>& ev) {
    std::vector<std::string> fields = typed_fields(
        ev.type, boost::json::serialize(boost::json::value_from(ev.data)), ev.key, ev.extra);
    add_traceparent(fields, ev.traceparent);
    std::string id = co_await append_fields(std::move(stream), std::move(fields));
    co_return id;
  }

  /// Appends a raw entry: `fields` is name, value, name, value, … (an even, non-zero count,
  /// else std::invalid_argument). Returns the new entry's id.
  asio::awaitable<std::string> append_fields(std::string stream, std::vector<std::string> fields);

  /// The trimming applied to `stream`.
  const trim_policy& trim_of(std::string_view stream) const noexcept;

  /// Appends the XADD for `stream` and `fields` to `req` (for callers batching their own
  /// pipelines); the trimming of `stream` applies.
  void push_xadd(redis::request& req, std::string_view stream,
                 const std::vector<std::string>& fields) const;

  /// Appends the field "traceparent" with `traceparent` to `fields` (nothing when it is
  /// empty). Throws std::invalid_argument when it is not a valid W3C traceparent.
  static void add_traceparent(std::vector<std::string>& fields, std::string_view traceparent);

  /// The fields of a typed event (type, data, key, headers), as append() stores them. A
  /// header named "traceparent" must be a valid one (else std::invalid_argument).
  static std::vector<std::string> typed_fields(std::string_view type, std::string data,
                                               std::string_view key, const headers& extra);

 private:
  redis::client& redis_;
  producer_options options_;
};

}  // namespace corvo::stream
