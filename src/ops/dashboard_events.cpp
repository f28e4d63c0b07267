// GET /api/events: a namespace's task events (events.hpp), newest first, for the page's
// events view and a task's timeline (docs/dashboard.md, "Task events").
//
// The store's reader goes forward only (from the oldest event held, or after a position), so
// a request reads every matching event from there with no waiting (read(max, 0ms)) and keeps
// the newest offset + limit: its cost grows with what the streams hold, which their cap
// bounds (shards × scheduler.events.max_len).
#include <algorithm>
#include <boost/json/serialize.hpp>
#include <corvo/schedule/events.hpp>
#include <corvo/schedule/store.hpp>
#include <deque>
#include <stdexcept>

#include "dashboard_impl.hpp"

namespace corvo::ops {

namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t default_limit = 100;
constexpr std::uint64_t max_limit = 500;
constexpr std::uint64_t max_offset = 10'000;
constexpr std::size_t read_batch = 1000;

// `kinds`: event kinds joined by ','; empty: every kind.
std::vector<schedule::event_kind> parse_kinds(const std::string& text) {
  std::vector<schedule::event_kind> kinds;
  std::size_t begin = 0;
  while (begin <= text.size() && !text.empty()) {
    const auto end = std::min(text.find(',', begin), text.size());
    const auto name = std::string_view(text).substr(begin, end - begin);
    const auto kind = schedule::parse_event_kind(name);
    if (!kind) {
      throw bad_request("parameter 'kinds': '" + std::string(name) +
                        "' is not an event kind (scheduled, started, succeeded, failed, dead, "
                        "cancelled)");
    }
    kinds.push_back(*kind);
    begin = end + 1;
  }
  return kinds;
}

json::object event_json(const schedule::task_event& e) {
  json::object o;
  o["kind"] = schedule::to_string(e.kind);
  o["task"] = e.task_id;
  o["type"] = e.type;
  o["attempt"] = e.attempt;
  if (e.due) {
    o["due_ms"] = epoch_ms(*e.due);
  } else {
    o["due_ms"] = nullptr;
  }
  o["at_ms"] = epoch_ms(e.at);
  o["reason"] = e.reason;
  o["source"] = e.source;
  o["shard"] = e.shard;
  o["position"] = e.position;
  return o;
}

asio::awaitable<response> list_events(dashboard::impl* board, const call& c) {
  auto& ns = find_namespace(*board, c);
  if (!ns.events) {
    json::object off;
    off["error"] = "task events are off for namespace '" + ns.name +
                   "' (scheduler.events.enabled is false): nothing is recorded to show";
    off["events_enabled"] = false;
    co_return make_response(c.req, http::status::conflict, json::serialize(off),
                            "application/json");
  }
  schedule::event_query query;
  query.task_id = c.param_or("task", "");
  query.type = c.param_or("type", "");
  query.kinds = parse_kinds(c.param_or("kinds", ""));
  const auto limit = c.number_or("limit", default_limit, max_limit);
  if (limit == 0) {
    throw bad_request("parameter 'limit' must be at least 1");
  }
  const auto offset = c.number_or("offset", 0, max_offset);
  const std::string after = c.param_or("after", "");
  if (after == schedule::events_from_now || after == schedule::events_from_start) {
    throw bad_request("parameter 'after' must be the position of an earlier answer");
  }
  query.from = after.empty() ? std::string(schedule::events_from_start) : after;

  std::unique_ptr<schedule::event_reader> reader;
  std::string refused;
  try {
    reader = co_await ns.tasks->events(query);
  } catch (const std::invalid_argument& e) {
    refused = e.what();
  }
  if (!reader) {
    throw bad_request("parameter 'after': " + refused);
  }
  // The newest offset + limit matching events, oldest first.
  const auto keep = static_cast<std::size_t>(offset + limit);
  std::deque<schedule::task_event> newest;
  std::uint64_t matched = 0;
  for (;;) {
    auto got = co_await reader->read(read_batch, 0ms);
    if (got.empty()) {
      break;
    }
    matched += got.size();
    for (auto& e : got) {
      newest.push_back(std::move(e));
      if (newest.size() > keep) {
        newest.pop_front();
      }
    }
  }
  json::array events;
  std::size_t skipped = 0;
  for (auto it = newest.rbegin(); it != newest.rend(); ++it) {
    if (skipped++ < offset) {
      continue;
    }
    events.push_back(event_json(*it));
  }
  json::object out;
  out["namespace"] = ns.name;
  out["events_enabled"] = true;
  out["events"] = std::move(events);
  out["matched"] = matched;
  out["more"] = matched > offset + limit;
  out["position"] = reader->position();
  co_return json_response(c, out);
}

}  // namespace

void install_event_routes(router& routes, dashboard::impl& board) {
  dashboard::impl* b = &board;
  routes.get("/api/events", [b](const call& c) { return list_events(b, c); });
}

}  // namespace corvo::ops
