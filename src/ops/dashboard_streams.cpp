// The stream views of the dashboard (apart from dashboard.cpp: stream/admin.hpp cannot share a
// file with headers that include stream/entry.hpp).
#include <boost/system/system_error.hpp>
#include <corvo/stream/admin.hpp>
#include <corvo/stream/admin_error.hpp>
#include <optional>

#include "dashboard_impl.hpp"

namespace corvo::ops {

namespace json = boost::json;

namespace {

json::array fields_json(const stream::field_list& fields) {
  json::array out;
  for (const auto& [k, v] : fields) {
    json::array pair;
    pair.push_back(json::string(k));
    pair.push_back(json::string(v));
    out.push_back(std::move(pair));
  }
  return out;
}

const stream_view& find_stream(dashboard::impl& board, const call& c) {
  const std::string& name = c.param("stream");
  for (const auto& s : board.streams) {
    if (s.stream == name) {
      return s;
    }
  }
  throw bad_request("unknown stream '" + name + "'");
}

const std::string& dead_stream_of(const stream_view& s) {
  if (s.dead_letter_stream.empty()) {
    throw bad_request("stream '" + s.stream + "' has no dead-letter stream configured");
  }
  return s.dead_letter_stream;
}

asio::awaitable<response> list_streams(dashboard::impl* board, const call& c) {
  json::array out;
  for (const auto& s : board->streams) {
    json::object o;
    o["stream"] = s.stream;
    o["dead_letter_stream"] = s.dead_letter_stream;
    std::vector<stream::group_info> groups;
    std::string problem;
    try {
      auto info = co_await s.admin->info(s.stream);
      o["length"] = info.length;
      groups = co_await s.admin->groups(s.stream);
    } catch (const boost::system::system_error& e) {
      if (e.code().category() != stream::admin_category()) {
        throw;
      }
      problem = e.what();  // e.g. the stream does not exist yet
    }
    o["error"] = problem;
    json::array gs;
    for (const auto& g : groups) {
      json::object go;
      go["name"] = g.name;
      go["pending"] = g.pending;
      go["last_delivered_id"] = g.last_delivered_id;
      if (g.lag) {
        go["lag"] = *g.lag;
      } else {
        go["lag"] = nullptr;
      }
      json::array consumers;
      for (const auto& ci : g.consumer_list) {
        json::object co;
        co["name"] = ci.name;
        co["pending"] = ci.pending;
        co["idle_ms"] = ci.idle_ms;
        consumers.push_back(std::move(co));
      }
      go["consumers"] = std::move(consumers);
      gs.push_back(std::move(go));
    }
    o["groups"] = std::move(gs);
    if (!s.dead_letter_stream.empty()) {
      auto page = co_await s.admin->dead_letters(s.dead_letter_stream, "-", 1000);
      o["dead_letters"] = page.entries.size() + page.malformed.size();
      o["dead_letters_more"] = page.next.has_value();
    }
    out.push_back(std::move(o));
  }
  json::object body;
  body["streams"] = std::move(out);
  co_return json_response(c, body);
}

asio::awaitable<response> list_stream_dead(dashboard::impl* board, const call& c) {
  const auto& s = find_stream(*board, c);
  auto page = co_await s.admin->dead_letters(dead_stream_of(s), c.param_or("after", "-"),
                                             c.number_or("limit", 50, 500));
  json::array entries;
  for (const auto& d : page.entries) {
    json::object o;
    o["id"] = d.id;
    o["source_id"] = d.source_id;
    o["group"] = d.group;
    o["consumer"] = d.consumer;
    o["deliveries"] = d.deliveries;
    o["reason"] = d.reason;
    o["at_ms"] = d.at_ms;
    o["fields"] = fields_json(d.fields);
    entries.push_back(std::move(o));
  }
  json::array malformed;
  for (const auto& m : page.malformed) {
    json::object o;
    o["id"] = m.id;
    o["problem"] = m.problem;
    o["fields"] = fields_json(m.fields);
    malformed.push_back(std::move(o));
  }
  json::object out;
  out["entries"] = std::move(entries);
  out["malformed"] = std::move(malformed);
  if (page.next) {
    out["next"] = *page.next;
  } else {
    out["next"] = nullptr;
  }
  co_return json_response(c, out);
}

asio::awaitable<response> replay_stream_dead(dashboard::impl* board, const call& c) {
  const auto& s = find_stream(*board, c);
  std::string id = c.param("id");
  std::string dead = dead_stream_of(s);
  std::optional<stream::replay_outcome> outcome;
  std::string refused;
  try {
    outcome = co_await s.admin->replay(dead, id);
  } catch (const boost::system::system_error& e) {
    if (e.code().category() != stream::admin_category()) {
      throw;
    }
    refused = e.what();  // a bad id, another slot, the source holds another type
  }
  if (!outcome) {
    co_return error_response(c.req, http::status::conflict, refused);
  }
  json::object out;
  out["status"] = stream::to_string(outcome->status);
  out["new_id"] = outcome->new_id;
  out["problem"] = outcome->problem;
  co_return json_response(c, out);
}

}  // namespace

void install_stream_routes(router& routes, dashboard::impl& board) {
  dashboard::impl* b = &board;
  routes.get("/api/streams", [b](const call& c) { return list_streams(b, c); });
  routes.get("/api/stream/dead", [b](const call& c) { return list_stream_dead(b, c); });
  routes.post("/api/stream/dead/replay", [b](const call& c) { return replay_stream_dead(b, c); });
}

}  // namespace corvo::ops
