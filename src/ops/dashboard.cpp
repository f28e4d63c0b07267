#include <algorithm>
#include <boost/json/serialize.hpp>
#include <corvo/health/monitor.hpp>
#include <corvo/queue/admin.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <corvo/schedule/store.hpp>

#include "dashboard_impl.hpp"

namespace corvo::ops {

namespace json = boost::json;

void lateness_window::add(clock::time_point at, double seconds) {
  samples.emplace_back(at, seconds);
  if (samples.size() > max_samples) {
    samples.pop_front();
  }
}

json::object lateness_window::percentiles(clock::time_point now) {
  while (!samples.empty() && samples.front().first < now - span) {
    samples.pop_front();
  }
  std::vector<double> values;
  values.reserve(samples.size());
  for (const auto& s : samples) {
    values.push_back(s.second);
  }
  std::sort(values.begin(), values.end());
  json::object out;
  out["count"] = values.size();
  for (auto [key, q] : {std::pair{"p50", 0.5}, std::pair{"p90", 0.9}, std::pair{"p99", 0.99}}) {
    if (values.empty()) {
      out[key] = nullptr;
    } else {
      auto i = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
      out[key] = values[std::min(i, values.size() - 1)];
    }
  }
  return out;
}

response json_response(const call& c, const json::value& body) {
  return make_response(c.req, http::status::ok, json::serialize(body), "application/json");
}

double epoch_ms(schedule::time_point t) {
  return static_cast<double>(t.time_since_epoch().count()) / 1000.0;
}

namespace_view& find_namespace(dashboard::impl& board, const call& c) {
  const std::string& ns = c.param("ns");
  for (auto& v : board.namespaces) {
    if (v->name == ns) {
      return *v;
    }
  }
  throw bad_request("unknown namespace '" + ns + "'");
}

namespace {

json::object task_json(const schedule::task& t, bool with_payload) {
  json::object o;
  o["id"] = t.id;
  o["type"] = t.type;
  o["due_ms"] = epoch_ms(t.due);
  o["occurrence_ms"] = epoch_ms(t.occurrence);
  o["attempts"] = t.attempts;
  o["max_attempts"] = t.max_attempts;
  o["last_error"] = t.last_error;
  o["recurrence"] = schedule::describe(t.repeat);
  o["state"] = schedule::to_string(t.state);
  if (with_payload) {
    o["payload"] = json::serialize(t.payload);  // shown as text by the page
  }
  return o;
}

const std::string& required_id(const call& c) {
  const std::string& id = c.param("id");
  if (id.empty()) {
    throw bad_request("parameter 'id' must not be empty");
  }
  return id;
}

// Depth, processing, dead and consumers of every queue shown.
asio::awaitable<json::array> queues_json(dashboard::impl* board) {
  json::array queues;
  for (const auto& q : board->queues) {
    auto info = co_await queue::inspect(*q.redis, q.name);
    json::object o;
    o["name"] = q.name;
    o["depth"] = info.depth;
    o["dead"] = info.dead;
    std::size_t processing = 0;
    json::array consumers;
    for (const auto& ci : info.consumers) {
      processing += ci.processing;
      json::object co;
      co["id"] = ci.id;
      co["processing"] = ci.processing;
      co["alive"] = ci.alive;
      co["heartbeat_ttl_ms"] = ci.heartbeat_ttl_ms;
      consumers.push_back(std::move(co));
    }
    o["processing"] = processing;
    o["consumers"] = std::move(consumers);
    queues.push_back(std::move(o));
  }
  co_return queues;
}

asio::awaitable<response> list_queues(dashboard::impl* board, const call& c) {
  json::object out;
  auto queues = co_await queues_json(board);
  out["queues"] = std::move(queues);
  co_return json_response(c, out);
}

asio::awaitable<response> overview(dashboard::impl* board, const call& c) {
  json::object out;
  json::array namespaces;
  auto now = lateness_window::clock::now();
  for (auto& v : board->namespaces) {
    auto st = co_await v->tasks->stats();
    json::object n;
    n["name"] = v->name;
    n["scheduled"] = st.scheduled;
    n["due"] = st.due_now;
    n["in_flight"] = st.in_flight;
    n["dead"] = st.dead;
    const auto paused = co_await v->tasks->paused();
    n["paused"] = paused.all;
    json::array paused_types;
    for (const auto& t : paused.types) {
      paused_types.emplace_back(t);
    }
    n["paused_types"] = std::move(paused_types);
    n["events_enabled"] = v->events;
    if (v->dispatch != nullptr) {
      const auto& d = v->dispatch->stats();
      n["runs_total"] = d.succeeded + d.retried + d.dead_lettered;
      n["succeeded_total"] = d.succeeded;
      n["lateness"] = v->lateness.percentiles(now);
    }
    namespaces.push_back(std::move(n));
  }
  out["namespaces"] = std::move(namespaces);
  auto queues = co_await queues_json(board);
  out["queues"] = std::move(queues);
  json::array streams;
  for (const auto& s : board->streams) {
    streams.push_back(json::string(s.stream));
  }
  out["streams"] = std::move(streams);
  if (board->monitor != nullptr) {
    out["health"] = board->monitor->summary().to_json();
  } else {
    out["health"] = nullptr;
  }
  co_return json_response(c, out);
}

asio::awaitable<response> list_tasks(dashboard::impl* board, const call& c) {
  auto& ns = find_namespace(*board, c);
  auto offset = c.number_or("offset", 0);
  auto limit = c.number_or("limit", 50, 500);
  std::string q = c.param_or("q", "");
  json::array tasks;
  json::object out;
  if (q.empty()) {
    auto page = co_await ns.tasks->browse(offset, limit);
    for (const auto& t : page) {
      tasks.push_back(task_json(t, false));
    }
  } else {
    // A substring search over the first `scan_limit` tasks in due order, a page at a time.
    constexpr std::size_t scan_limit = 10'000, page_size = 500;
    std::size_t scanned = 0, matched = 0;
    bool more = true;
    while (more && scanned < scan_limit && tasks.size() < limit) {
      auto page = co_await ns.tasks->browse(scanned, page_size);
      more = page.size() == page_size;
      scanned += page.size();
      for (const auto& t : page) {
        if (t.id.find(q) == std::string::npos && t.type.find(q) == std::string::npos) {
          continue;
        }
        if (matched++ >= offset && tasks.size() < limit) {
          tasks.push_back(task_json(t, false));
        }
      }
    }
    out["scanned"] = scanned;
    out["truncated"] = more && scanned >= scan_limit;
  }
  out["tasks"] = std::move(tasks);
  co_return json_response(c, out);
}

asio::awaitable<response> get_task(dashboard::impl* board, const call& c) {
  auto& ns = find_namespace(*board, c);
  auto t = co_await ns.tasks->get(required_id(c));
  if (!t) {
    co_return error_response(c.req, http::status::not_found, "no such task");
  }
  co_return json_response(c, task_json(*t, true));
}

asio::awaitable<response> list_dead(dashboard::impl* board, const call& c) {
  auto& ns = find_namespace(*board, c);
  auto page =
      co_await ns.tasks->dead_letters(c.number_or("offset", 0), c.number_or("limit", 50, 500));
  json::array tasks;
  for (const auto& t : page) {
    tasks.push_back(task_json(t, true));
  }
  json::object out;
  out["tasks"] = std::move(tasks);
  co_return json_response(c, out);
}

asio::awaitable<response> replay_dead(dashboard::impl* board, const call& c) {
  auto& ns = find_namespace(*board, c);
  bool replayed = co_await ns.tasks->replay(required_id(c));
  json::object out;
  out["replayed"] = replayed;
  co_return json_response(c, out);
}

asio::awaitable<response> purge_dead(dashboard::impl* board, const call& c) {
  auto& ns = find_namespace(*board, c);
  std::string id = required_id(c);
  auto purged = co_await ns.tasks->purge(id == "*" ? std::string{} : id);
  json::object out;
  out["purged"] = purged;
  co_return json_response(c, out);
}

asio::awaitable<response> cancel_task(dashboard::impl* board, const call& c) {
  auto& ns = find_namespace(*board, c);
  bool cancelled = co_await ns.tasks->cancel(required_id(c));
  json::object out;
  out["cancelled"] = cancelled;
  co_return json_response(c, out);
}

// POST /api/pause and /api/resume: the namespace, or one task type (`type`).
asio::awaitable<response> pause_or_resume(dashboard::impl* board, const call& c, bool pause) {
  auto& ns = find_namespace(*board, c);
  const std::string& type = c.param("type");
  if (type == "*" || type.find('\n') != std::string::npos) {
    throw bad_request("parameter 'type' must be a task type");
  }
  if (pause) {
    co_await ns.tasks->pause(type);
  } else {
    co_await ns.tasks->resume(type);
  }
  json::object out;
  out[pause ? "paused" : "resumed"] = type.empty() ? "*" : type;
  co_return json_response(c, out);
}

asio::awaitable<response> session(const router* routes, const call& c) {
  json::object out;
  out["csrf_token"] = routes->policy().csrf_token;
  out["token_required"] = !routes->policy().token.empty();
  co_return json_response(c, out);
}

asio::awaitable<response> asset(std::string_view body, std::string_view type, const call& c) {
  co_return make_response(c.req, http::status::ok, std::string(body), type);
}

}  // namespace

dashboard::dashboard() : impl_(std::make_unique<impl>()) {}
dashboard::~dashboard() = default;

void dashboard::add_namespace(std::string name, schedule::store& tasks,
                              schedule::dispatcher* dispatch, namespace_options options) {
  auto v = std::make_unique<namespace_view>();
  v->name = std::move(name);
  v->tasks = &tasks;
  v->dispatch = dispatch;
  v->events = options.events;
  if (dispatch != nullptr) {
    lateness_window* window = &v->lateness;
    dispatch->on_start([window](const schedule::claimed_task& t) {
      auto late = schedule::now() - t.work.due;
      window->add(lateness_window::clock::now(), std::chrono::duration<double>(late).count());
    });
  }
  impl_->namespaces.push_back(std::move(v));
}

void dashboard::add_namespace(std::string name, schedule::scheduler& sched) {
  namespace_options options;
  options.events = sched.options().events.enabled;
  add_namespace(std::move(name), sched.tasks(), &sched.dispatcher(), options);
}

void dashboard::add_stream(stream::admin& admin, std::string stream,
                           std::string dead_letter_stream) {
  impl_->streams.push_back(stream_view{&admin, std::move(stream), std::move(dead_letter_stream)});
}

void dashboard::add_queue(redis::client& redis, std::string queue) {
  impl_->queues.push_back(queue_view{&redis, std::move(queue)});
}

void dashboard::set_health(const health::monitor& monitor) {
  impl_->monitor = &monitor;
}

void dashboard::install(router& routes) {
  impl* b = impl_.get();
  const router* r = &routes;
  auto page = [](const call& c) { return asset(dashboard_html(), "text/html; charset=utf-8", c); };
  routes.get("/", page, true);
  routes.get("/dashboard", page, true);
  routes.get(
      "/dashboard/app.js",
      [](const call& c) { return asset(dashboard_js(), "text/javascript; charset=utf-8", c); },
      true);
  routes.get(
      "/dashboard/style.css",
      [](const call& c) { return asset(dashboard_css(), "text/css; charset=utf-8", c); }, true);
  routes.get("/api/session", [r](const call& c) { return session(r, c); });
  routes.get("/api/overview", [b](const call& c) { return overview(b, c); });
  routes.get("/api/tasks", [b](const call& c) { return list_tasks(b, c); });
  routes.get("/api/task", [b](const call& c) { return get_task(b, c); });
  routes.get("/api/dead", [b](const call& c) { return list_dead(b, c); });
  routes.post("/api/dead/replay", [b](const call& c) { return replay_dead(b, c); });
  routes.post("/api/dead/purge", [b](const call& c) { return purge_dead(b, c); });
  routes.post("/api/task/cancel", [b](const call& c) { return cancel_task(b, c); });
  routes.post("/api/pause", [b](const call& c) { return pause_or_resume(b, c, true); });
  routes.post("/api/resume", [b](const call& c) { return pause_or_resume(b, c, false); });
  install_event_routes(routes, *b);
  install_stream_routes(routes, *b);
  routes.get("/api/queues", [b](const call& c) { return list_queues(b, c); });
  install_queue_routes(routes, *b);
}

}  // namespace corvo::ops
