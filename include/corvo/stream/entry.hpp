#pragma once
// What a stream holds and what a consumer's handler receives.
//
// A typed event is stored as the fields
//   type   the event type (selects the handler, see typed_handlers.hpp)
//   data   the event as JSON (boost::json::value_from, so a tag_invoke overload defines it)
//   key    optional: entries with the same key are handled in order when the consumer keeps
//          key order (consumer_options::ordered_by_key)
//   …      optional headers (e.g. "traceparent"), each one more field
// in that order. Raw entries are any field/value pairs (producer::append_fields).

#include <corvo/core/trace.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corvo::stream {

/// Field names of a typed event.
namespace event_field {
inline constexpr std::string_view type = "type";
inline constexpr std::string_view data = "data";
inline constexpr std::string_view key = "key";
}  // namespace event_field

/// Extra fields of a typed event (trace context and the like), in order.
using headers = std::vector<std::pair<std::string, std::string>>;

/// A typed event to append: `data` is converted with boost::json::value_from.
/// Build it as a named variable before `co_await producer.append(stream, ev)` (GCC 12
/// destroys a braced temporary inside a co_await expression twice).
template <class T>
struct event {
  std::string type;
  T data;
  /// Empty: no `key` field.
  std::string key;
  headers extra;
  /// W3C trace context (core/trace.hpp) stored as the field "traceparent" after the
  /// headers; empty: none. append() throws std::invalid_argument for an invalid one.
  std::string traceparent;
};

/// One stream entry as delivered to a consumer.
struct entry {
  /// The stream it was read from.
  std::string stream;
  /// Its id ("1700000000000-0").
  std::string id;
  /// Field names and values, flat and in stored order: name, value, name, value, …
  std::vector<std::string> fields;
  /// How often the group has delivered it, this delivery included (1 on a first read).
  std::uint64_t deliveries = 1;

  /// The value of the first field called `name`, if there is one.
  std::optional<std::string_view> field(std::string_view name) const noexcept {
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i] == name) {
        return std::string_view(fields[i + 1]);
      }
    }
    return std::nullopt;
  }

  /// The entry's W3C trace context (its "traceparent" field), or empty when it has none or
  /// the field is not a valid traceparent. Log it with CORVO_LOG_TRACED.
  std::string_view traceparent() const noexcept {
    const auto tp = field(trace::traceparent_name);
    return tp && trace::is_valid_traceparent(*tp) ? *tp : std::string_view();
  }
};

}  // namespace corvo::stream
