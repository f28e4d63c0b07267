#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <corvo/schedule/sink.hpp>
#include <corvo/schedule/task_message.hpp>
#include <limits>

namespace corvo::schedule {
namespace {

namespace json = boost::json;

std::int64_t micros_of(time_point t) {
  return t.time_since_epoch().count();
}

const json::value& member(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (v == nullptr) {
    throw permanent_error("task message has no '" + std::string(name) + "' member");
  }
  return *v;
}

std::string string_member(const json::object& o, std::string_view name) {
  const auto& v = member(o, name);
  if (!v.is_string() || v.get_string().empty()) {
    throw permanent_error("task message member '" + std::string(name) +
                          "' is not a non-empty string");
  }
  return std::string(v.get_string());
}

std::int64_t integer_member(const json::object& o, std::string_view name, std::int64_t min,
                            std::int64_t max) {
  const auto& v = member(o, name);
  std::int64_t n = 0;
  if (v.is_int64()) {
    n = v.get_int64();
  } else if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(max)) {
    n = static_cast<std::int64_t>(v.get_uint64());
  } else {
    throw permanent_error("task message member '" + std::string(name) + "' is not an integer");
  }
  if (n < min || n > max) {
    throw permanent_error("task message member '" + std::string(name) + "' is out of range (" +
                          std::to_string(n) + ")");
  }
  return n;
}

}  // namespace

std::string encode_task_message(const claimed_task& t, time_point published) {
  json::object o;
  o.reserve(8);
  o["id"] = t.work.id;
  o["type"] = t.work.type;
  o["payload"] = t.work.payload;
  o["due"] = micros_of(t.work.due);
  o["occurrence"] = micros_of(t.work.occurrence);
  o["attempt"] = t.work.attempts;
  o["max_attempts"] = t.work.max_attempts;
  if (t.work.timeout && t.work.timeout->count() > 0) {
    o["timeout_ms"] = t.work.timeout->count();
  }
  o["published"] = micros_of(published);
  return json::serialize(o);
}

task_message decode_task_message(std::string_view text) {
  boost::system::error_code ec;
  auto value = json::parse(text, ec);
  if (ec) {
    throw permanent_error("task message is not JSON: " + ec.message());
  }
  if (!value.is_object()) {
    throw permanent_error("task message is not a JSON object");
  }
  const auto& o = value.get_object();
  constexpr auto max_micros = std::numeric_limits<std::int64_t>::max();
  constexpr auto max_u32 = std::numeric_limits<std::uint32_t>::max();
  task_message m;
  m.work.id = string_member(o, "id");
  m.work.type = string_member(o, "type");
  m.work.payload = member(o, "payload");
  m.work.due = time_point(std::chrono::microseconds(integer_member(o, "due", 0, max_micros)));
  // Optional: publishers before the occurrence existed did not send it.
  m.work.occurrence = m.work.due;
  if (o.contains("occurrence")) {
    m.work.occurrence =
        time_point(std::chrono::microseconds(integer_member(o, "occurrence", 0, max_micros)));
  }
  m.work.attempts = static_cast<std::uint32_t>(integer_member(o, "attempt", 1, max_u32));
  m.work.max_attempts = static_cast<std::uint32_t>(integer_member(o, "max_attempts", 1, max_u32));
  if (o.contains("timeout_ms")) {
    m.work.timeout = std::chrono::milliseconds(integer_member(o, "timeout_ms", 1, max_micros));
  }
  m.published =
      time_point(std::chrono::microseconds(integer_member(o, "published", 0, max_micros)));
  m.work.state = task_state::in_flight;
  return m;
}

}  // namespace corvo::schedule
