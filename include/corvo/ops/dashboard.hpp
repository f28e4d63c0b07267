#pragma once
// The web dashboard: a page (HTML, JS and CSS compiled into the library; nothing is
// downloaded) and the JSON API it reads, served by the ops endpoint.
//
//   ops::dashboard board;
//   board.add_namespace("mail", sched);      // its store, dispatcher and events setting
//   board.add_stream(stream_admin, "orders", "orders:dead");
//   board.add_queue(redis, "coupons");
//   board.set_health(app.monitor());
//   board.install(routes);
//
// Routes (the page and its assets are public; the API follows the router's access rules,
// POST needs the CSRF token from /api/session):
//   GET  /, /dashboard/app.js, /dashboard/style.css   the page
//   GET  /api/session                  {"csrf_token"}
//   GET  /api/overview                 namespaces with scheduled/due/in_flight/dead, paused
//                                      (namespace) and paused_types, run
//                                      totals and lateness percentiles (last 60 s) for the
//                                      charts, queues, health
//   GET  /api/tasks?ns&offset&limit&q  the schedule in due order; q filters ids and types
//                                      (a substring, over the first 10,000 tasks)
//   GET  /api/task?ns&id               one task (payload, attempts, last error, recurrence)
//   GET  /api/dead?ns&offset&limit     dead letters, most recent first
//   POST /api/dead/replay   ns, id     a dead task back to due now
//   POST /api/dead/purge    ns, id     one dead task (id "*": all of them)
//   POST /api/task/cancel   ns, id     removes a task
//   POST /api/pause         ns[, type] pauses the namespace, or one task type (store::pause)
//   POST /api/resume        ns[, type] lifts that pause (store::resume)
//   GET  /api/events?ns&task&type&kinds&offset&limit&after
//                                      the namespace's task events, newest first (the
//                                      store's event reader, no waiting); 409 when events
//                                      are off for the namespace (namespace_options::events)
//   GET  /api/streams                  streams, groups, consumers, pending, lag
//   GET  /api/stream/dead?stream&after dead letters of a stream
//   POST /api/stream/dead/replay stream, id
//   GET  /api/queues                   depth, consumers, processing, dead
//   GET  /api/queue/dead?queue&offset&limit   dead letters of a queue, newest first
//   POST /api/queue/dead/replay queue, id     back into the queue (id "*": all of them)
//   POST /api/queue/dead/purge  queue, id     deleted (id "*": all of them)
// Every value that comes from Redis goes to the page as JSON data and is put into the page
// as text (textContent), never as markup: a payload "<script>…" shows as those characters.
// An unknown namespace or stream, or a missing parameter, is a 400; an unknown task a 404.

#include <chrono>
#include <corvo/ops/router.hpp>
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::health {
class monitor;
}
namespace corvo::schedule {
class store;
class dispatcher;
class scheduler;
}  // namespace corvo::schedule
namespace corvo::stream {
class admin;
}
namespace corvo::redis {
class client;
}

namespace corvo::ops {

/// The page's assets, as served.
std::string_view dashboard_html() noexcept;
std::string_view dashboard_js() noexcept;
std::string_view dashboard_css() noexcept;

/// How the dashboard shows a namespace.
struct namespace_options {
  /// The namespace's processes write task events (`scheduler.events.enabled`; every process
  /// of a namespace sets the same, docs/scheduler.md "Task events"). False: the events view
  /// and GET /api/events say that events are off (409) instead of showing an empty history.
  bool events = false;
};

class dashboard {
 public:
  dashboard();
  ~dashboard();
  dashboard(const dashboard&) = delete;
  dashboard& operator=(const dashboard&) = delete;

  /// Shows namespace `name` of `tasks`. With its dispatcher, the charts also get run totals
  /// and lateness (observed through dispatcher::on_start). Both must outlive the dashboard.
  void add_namespace(std::string name, schedule::store& tasks,
                     schedule::dispatcher* dispatch = nullptr, namespace_options options = {});
  /// The same for a scheduler: its store and dispatcher, and namespace_options::events from
  /// its `scheduler.events.enabled`. The scheduler must outlive the dashboard.
  void add_namespace(std::string name, schedule::scheduler& sched);
  /// Shows `stream` (its groups and consumers) and, when given, its dead-letter stream.
  void add_stream(stream::admin& admin, std::string stream, std::string dead_letter_stream = {});
  /// Shows a queue (queue::inspect).
  void add_queue(redis::client& redis, std::string queue);
  /// Shows the health of every dependency of `monitor`.
  void set_health(const health::monitor& monitor);

  /// Adds the routes listed in the file comment to `routes`; the dashboard must outlive it.
  void install(router& routes);

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace corvo::ops
