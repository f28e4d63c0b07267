#include <corvo/stream/producer.hpp>
#include <stdexcept>

namespace corvo::stream {

namespace {

trim_policy read_trim(const corvo::config& section, const trim_policy& fallback,
                      const std::string& where) {
  trim_policy t = fallback;
  const bool has_len = section.contains("max_len");
  const bool has_age = section.contains("retention");
  const auto max_len = section.get_or<std::uint64_t>("max_len", 0);
  const auto retention = section.get_or<std::chrono::milliseconds>("retention", {});
  if (has_len && has_age && max_len > 0 && retention.count() > 0) {
    throw config_error(where, "trims either by max_len or by retention, not both");
  }
  if (has_len || has_age) {
    t.max_len = max_len;
    t.retention = retention;
  }
  return t;
}

}  // namespace

producer_options producer_options::from(const corvo::config& cfg, std::string_view section) {
  producer_options o;
  const auto root = cfg.section(section);
  o.trim = read_trim(root, {}, std::string(section));
  const auto streams = root.section("streams");
  for (const auto& key : root.keys("streams")) {
    o.streams.emplace(
        key, read_trim(streams.section(key), {}, std::string(section) + ".streams." + key));
  }
  cfg.reject_unknown_keys(section);
  return o;
}

producer::producer(redis::client& redis, producer_options options)
    : redis_(redis), options_(std::move(options)) {}

const trim_policy& producer::trim_of(std::string_view stream) const noexcept {
  if (const auto it = options_.streams.find(stream); it != options_.streams.end()) {
    return it->second;
  }
  return options_.trim;
}

void producer::push_xadd(redis::request& req, std::string_view stream,
                         const std::vector<std::string>& fields) const {
  if (fields.empty() || fields.size() % 2 != 0) {
    throw std::invalid_argument("stream::producer: an entry needs field/value pairs (got " +
                                std::to_string(fields.size()) + " strings)");
  }
  const auto& t = trim_of(stream);
  if (t.max_len > 0) {
    req.push("XADD", stream, "MAXLEN", "~", t.max_len, "*", fields);
  } else if (t.retention.count() > 0) {
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    const auto min_ms = now - t.retention;
    req.push("XADD", stream, "MINID", "~", min_ms.count() > 0 ? min_ms.count() : 0, "*", fields);
  } else {
    req.push("XADD", stream, "*", fields);
  }
}

asio::awaitable<std::string> producer::append_fields(std::string stream,
                                                     std::vector<std::string> fields) {
  redis::request req;
  push_xadd(req, stream, fields);
  redis::response<std::string> resp;
  co_await redis_.exec(req, resp);
  co_return std::move(std::get<0>(resp).value());
}

std::vector<std::string> producer::typed_fields(std::string_view type, std::string data,
                                                std::string_view key, const headers& extra) {
  std::vector<std::string> fields;
  fields.reserve(6 + 2 * extra.size());
  fields.emplace_back(event_field::type);
  fields.emplace_back(type);
  fields.emplace_back(event_field::data);
  fields.push_back(std::move(data));
  if (!key.empty()) {
    fields.emplace_back(event_field::key);
    fields.emplace_back(key);
  }
  for (const auto& [name, value] : extra) {
    if (name == trace::traceparent_name) {
      trace::check_traceparent(value, "stream event");
    }
    fields.push_back(name);
    fields.push_back(value);
  }
  return fields;
}

void producer::add_traceparent(std::vector<std::string>& fields, std::string_view traceparent) {
  if (traceparent.empty()) {
    return;
  }
  trace::check_traceparent(traceparent, "stream event");
  fields.emplace_back(trace::traceparent_name);
  fields.emplace_back(traceparent);
}

}  // namespace corvo::stream
