// The queue dead-letter views of the dashboard: list, replay and purge (queue/admin.hpp).
#include <corvo/queue/admin.hpp>

#include "dashboard_impl.hpp"

namespace corvo::ops {

namespace json = boost::json;

namespace {

const queue_view& find_queue(dashboard::impl& board, const call& c) {
  const std::string& name = c.param("queue");
  for (const auto& q : board.queues) {
    if (q.name == name) {
      return q;
    }
  }
  throw bad_request("unknown queue '" + name + "'");
}

// The item id of a replay or purge: "*" for every dead letter of the queue.
std::string item_id(const call& c) {
  const std::string& id = c.param("id");
  if (id.empty()) {
    throw bad_request("parameter 'id' is empty (\"*\" means every dead letter)");
  }
  return id == "*" ? std::string() : id;
}

asio::awaitable<response> list_queue_dead(dashboard::impl* board, const call& c) {
  const auto& q = find_queue(*board, c);
  const auto letters = co_await queue::dead_letters(
      *q.redis, q.name, c.number_or("offset", 0, 1u << 30), c.number_or("limit", 50, 500));
  json::array entries;
  for (const auto& d : letters) {
    json::object o;
    o["id"] = d.id;
    o["attempts"] = d.attempts;
    o["reason"] = d.reason;
    o["consumer"] = d.consumer;
    o["at_ms"] = d.at_ms;
    o["body"] = d.body;
    entries.push_back(std::move(o));
  }
  json::object out;
  out["queue"] = q.name;
  out["entries"] = std::move(entries);
  co_return json_response(c, out);
}

asio::awaitable<response> replay_queue_dead(dashboard::impl* board, const call& c) {
  const auto& q = find_queue(*board, c);
  const auto replayed = co_await queue::replay_dead(*q.redis, q.name, item_id(c));
  json::object out;
  out["replayed"] = replayed;
  co_return json_response(c, out);
}

asio::awaitable<response> purge_queue_dead(dashboard::impl* board, const call& c) {
  const auto& q = find_queue(*board, c);
  const auto purged = co_await queue::purge_dead(*q.redis, q.name, item_id(c));
  json::object out;
  out["purged"] = purged;
  co_return json_response(c, out);
}

}  // namespace

void install_queue_routes(router& routes, dashboard::impl& board) {
  dashboard::impl* b = &board;
  routes.get("/api/queue/dead", [b](const call& c) { return list_queue_dead(b, c); });
  routes.post("/api/queue/dead/replay", [b](const call& c) { return replay_queue_dead(b, c); });
  routes.post("/api/queue/dead/purge", [b](const call& c) { return purge_queue_dead(b, c); });
}

}  // namespace corvo::ops
