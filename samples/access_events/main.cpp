// access_events: the Redis Streams access-event system, on corvo.
//
// An admin HTTP API (Boost.Beast). A middleware classifies every request by its path into
// an access category and hands an event to a bounded in-memory buffer, which appends the
// events to a Redis stream in pipelined batches: the response never waits for Redis, and a
// Redis outage never fails a request (events wait in the buffer; beyond its bound they are
// dropped and counted). A consumer group stores the events in a database (SQLite by
// default, PostgreSQL for a postgresql:// URL) in batched, idempotent inserts, and the
// admin API answers from it: requests per category for a day, and the category list.
//
//   HTTP ─▶ middleware ─▶ event_buffer ─XADD×N─▶ stream ─▶ consumer group ─▶ access_event table
//                                                                                 ▲
//   GET /admin/api/v1/event/access/summary/2025-05-04 ───────────────────────────┘
//
// The health monitor probes Redis: when it fails, the consumer is stopped (its unfinished
// entries stay pending in the group), and restarted when Redis is back. A retention job on
// corvo's scheduler (its Redis store: one process of all those running claims each run)
// trims the stream and deletes rows older than 60 days, daily at 10:00 UTC.
//
//   access_events --redis redis://127.0.0.1:6379 [--database sqlite:access_events.db]
//                 [--listen 127.0.0.1:8080] [--config file.json] [--print-config]
//   access_events ... --load 10000 --connections 32   # fire requests at itself, check, exit
//
// Configuration: the built-in JSON below (--print-config), or --config FILE; CORVO_*
// environment variables override either (CORVO_ACCESS_EVENTS__BUFFER_LIMIT=1000).

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/health/app.hpp>
#include <corvo/health/probes.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <corvo/stream/consumer.hpp>
#include <corvo/stream/retention.hpp>
#include <corvo/stream/typed_handlers.hpp>
#include <db/database.hpp>
#include <iomanip>
#include <iostream>
#include <optional>
#include <regex>
#include <sample/main.hpp>

#include "access_log.hpp"
#include "event_store.hpp"
#include "http_server.hpp"
#include "load_client.hpp"

namespace json = boost::json;
namespace po = boost::program_options;
namespace health = corvo::health;
namespace redis = corvo::redis;
namespace schedule = corvo::schedule;
namespace stream = corvo::stream;
using namespace std::chrono_literals;

namespace access_events {

// ---- configuration ----------------------------------------------------------------------

struct settings {
  std::string redis_url;
  std::string database = "sqlite:access_events.db";
  std::string listen = "127.0.0.1:8080";
  std::string config_file;
  std::uint64_t load = 0;  // > 0: the self-test load
  std::size_t connections = 32;
};

std::string default_config(const settings& s) {
  json::value document = {
      {"redis", {{"url", s.redis_url}}},
      {"health", {{"probe_interval", "200ms"}, {"probe_timeout", "500ms"}}},
      {"scheduler", {{"provider", "redis"}, {"namespace", "access_events"}, {"shards", 2}}},
      {"access_events",
       {{"listen", s.listen},
        {"database", s.database},
        {"stream", "access-events"},
        {"buffer_limit", 100000},
        {"append_batch", 512},
        {"insert_batch", 256},
        {"consumer",
         {{"group", "access-store"},
          {"streams", json::array{"access-events"}},
          {"consumer", "access-events"},
          {"batch", 256},
          {"max_in_flight", 512},
          {"block", "1s"}}},
        {"retention", {{"max_age", "1440h"}, {"schedule", "cron 0 10 * * *"}}}}}};
  return json::serialize(document);
}

// ---- the program ----------------------------------------------------------------------------

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Stores one consumed stream entry through the batch writer (a named coroutine: GCC 12 and
// capturing coroutine lambdas do not mix). A malformed entry is dead-lettered at once.
asio::awaitable<void> store_entry(batch_writer* writer, const stream::entry* entry) {
  access_event event;
  try {
    event = from_entry(*entry);
  } catch (const std::exception& e) {
    throw stream::permanent_error(e.what());
  }
  co_await writer->store(entry->id, std::move(event));
}

class access_events_service {
 public:
  access_events_service(const corvo::config& cfg, const settings& s)
      : app_(health::app_options::from(cfg)),
        database_({.url = cfg.get<std::string>("access_events.database")}),
        store_(database_),
        writer_(app_.get_executor(), store_, cfg.get<std::size_t>("access_events.insert_batch")),
        redis_(app_.get_executor(), redis::client_config::from(cfg)),
        events_(redis_, buffer_options(cfg)),
        consumer_(redis_, stream::consumer_options::from(cfg, "access_events.consumer")),
        scheduler_(app_.get_executor(), schedule::scheduler_options::from(cfg), &redis_,
                   redis::client_config::from(cfg)),
        retention_(redis_, retention_options(cfg)),
        http_(
            app_.get_executor(), host_of(cfg), port_of(cfg),
            [this](const http_request& r) { return route(r); },
            [this](const http_request& q, const http_response& r) { record(q, r); }),
        settings_(s) {
    cfg.reject_unknown_keys("access_events");
  }

  int run() {
    // The table first, on a loop of its own (the program is not serving yet).
    {
      asio::io_context setup;
      std::exception_ptr failed;
      asio::co_spawn(setup, store_.create_schema(), [&](std::exception_ptr e) { failed = e; });
      setup.run();
      if (failed) {
        std::rethrow_exception(failed);
      }
    }

    // Services run from start to the end of the shutdown; the consumer is supervised: it
    // runs while Redis answers, is stopped when it fails and restarted when it is back.
    app_.add_service("redis", [this] { return redis_.run(); });
    app_.add_service("event-buffer", [this] { return events_.run(); });
    app_.add_service("db-writer", [this] { return writer_.run(); });
    app_.add_service("http", [this] { return http_.run(); });
    auto redis_up = app_.add_dependency("redis", health::redis_ping_probe(redis_));
    health::reset_when_down(redis_up, redis_);  // a hung Redis holds no stop
    app_.add_component({"event-consumer", [this] { return consume(); }}, {redis_up});
    // The scheduler's store is Redis: each due retention run is claimed by one process of
    // all those running access_events, and waits while Redis is down.
    app_.add_component({"scheduler", [this] { return scheduler_.run(); }}, {redis_up});
    register_retention();

    std::cout << "access_events: listening on 127.0.0.1:" << http_.port() << ", database "
              << (database_.kind() == db::backend::sqlite ? "SQLite" : "PostgreSQL") << std::endl;
    asio::co_spawn(app_.get_executor(), start(), [this](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          std::cerr << "access_events: " << x.what() << "\n";
        }
        verdict_ = 1;
        app_.request_stop();
      }
    });
    const auto result = app_.run();
    return corvo::samples::exit_code("access_events", result, verdict_, settings_.load > 0);
  }

 private:
  static event_buffer_options buffer_options(const corvo::config& cfg) {
    event_buffer_options o;
    o.stream = cfg.get<std::string>("access_events.stream");
    o.limit = cfg.get<std::size_t>("access_events.buffer_limit");
    o.batch = cfg.get<std::size_t>("access_events.append_batch");
    return o;
  }
  static stream::retention_options retention_options(const corvo::config& cfg) {
    stream::retention_options o;
    o.streams = {cfg.get<std::string>("access_events.stream")};
    o.max_age = cfg.get<std::chrono::milliseconds>("access_events.retention.max_age");
    o.schedule = cfg.get<std::string>("access_events.retention.schedule");
    o.task_id = "access_events.stream_retention";
    return o;
  }
  static std::string host_of(const corvo::config& cfg) {
    const auto listen = cfg.get<std::string>("access_events.listen");
    return listen.substr(0, listen.rfind(':'));
  }
  static unsigned short port_of(const corvo::config& cfg) {
    const auto listen = cfg.get<std::string>("access_events.listen");
    return static_cast<unsigned short>(std::stoul(listen.substr(listen.rfind(':') + 1)));
  }

  // ---- the middleware: every served request becomes an event (not the stats polls) -------

  void record(const http_request& request, const http_response& response) {
    const std::string_view target = request.target();
    if (target.starts_with("/admin/api/v1/event/access/stats")) {
      return;  // monitoring the pipeline is not an access to record
    }
    access_event e;
    e.event_id = event_prefix_ + std::to_string(++sequence_);
    e.category = classify(target);
    e.method = std::string(request.method_string());
    e.path = std::string(target.substr(0, target.find('?')));
    e.status = static_cast<int>(response.result_int());
    e.at_ms = now_ms();
    events_.record(std::move(e));
  }

  // ---- the admin API ---------------------------------------------------------------------

  asio::awaitable<http_response> route(const http_request& request) {
    const std::string target(request.target().substr(0, request.target().find('?')));
    static const std::regex summary_path(
        R"(/admin/api/v1/event/access/summary/(\d{4}-\d{2}-\d{2}))");
    std::smatch match;
    if (request.method() != http::verb::get) {
      co_return json_response(request, http::status::method_not_allowed, R"({"error":"GET only"})");
    }
    if (std::regex_match(target, match, summary_path)) {
      const std::string day = match[1];
      auto counts = co_await store_.summary(day);
      json::object by_category;
      std::int64_t total = 0;
      for (const auto& category : categories()) {
        by_category[category] = counts[category];
        total += counts[category];
      }
      json::object body{{"date", day}, {"total", total}, {"categories", by_category}};
      co_return json_response(request, http::status::ok, json::serialize(body));
    }
    if (target == "/admin/api/v1/event/access/categories") {
      json::array list(categories().begin(), categories().end());
      co_return json_response(request, http::status::ok, json::serialize(list));
    }
    if (target == "/admin/api/v1/event/access/stats") {
      co_return json_response(request, http::status::ok, json::serialize(stats()));
    }
    if (target == "/admin/api/v1/users") {
      co_return json_response(request, http::status::ok,
                              R"([{"id":1,"name":"ada"},{"id":2,"name":"grace"}])");
    }
    if (target == "/admin/api/v1/settings") {
      co_return json_response(request, http::status::ok, R"({"retention_days":60})");
    }
    co_return json_response(request, http::status::not_found, R"({"error":"not found"})");
  }

  json::object stats() {
    const auto& buffer = events_.stats();
    const auto& supervision = app_.supervision_of("event-consumer");
    const auto& consumed = consumer_.stats();
    return {{"recorded", buffer.recorded},
            {"appended", buffer.appended},
            {"dropped", buffer.dropped},
            {"buffered", events_.buffered()},
            {"append_failures", buffer.failed_attempts},
            {"stored", writer_.stored()},
            {"duplicates", writer_.duplicates()},
            {"insert_batches", writer_.batches()},
            {"read", consumed.read},
            {"acked", consumed.acked},
            {"consumer",
             {{"state", std::string(health::to_string(supervision.state()))},
              {"starts", supervision.stats().starts},
              {"stops", supervision.stats().stops},
              {"failures", supervision.stats().failures}}}};
  }

  // ---- the consumer group ---------------------------------------------------------------

  asio::awaitable<void> consume() {
    auto* writer = &writer_;
    co_await consumer_.run([writer](const stream::entry& e) { return store_entry(writer, &e); });
  }

  // ---- retention: the stream (safe_trim) and the table, both on the scheduler ----------

  void register_retention() {
    retention_.register_handler(scheduler_.handlers());
    scheduler_.handlers().on_task(
        std::string(db_retention_type),
        [this](const schedule::claimed_task& c) { return delete_old_rows(c.work.due); });
  }

  asio::awaitable<void> delete_old_rows(schedule::time_point due) {
    const auto cutoff = now_ms() - retention_.options().max_age.count();
    const auto deleted = co_await store_.delete_older_than(cutoff);
    const auto due_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(due.time_since_epoch()).count();
    CORVO_LOG(info, "access_events") << "retention: deleted " << deleted << " rows older than "
                                     << utc_day(cutoff) << " (run due " << due_ms << ")";
  }

  asio::awaitable<void> ensure_db_retention_task() {
    schedule::task t;
    t.id = "access_events.db_retention";
    t.type = std::string(db_retention_type);
    t.payload = json::object{};
    t.repeat = schedule::parse_recurrence(retention_.options().schedule);
    t.due = *schedule::next_occurrence(t.repeat, schedule::now());
    // Every process ensures it; the first one's stays (a restart does not move it).
    co_await scheduler_.schedule_if_absent(std::move(t));
  }

  // What runs once everything is up: the retention tasks, then (with --load) the self-test.
  asio::awaitable<void> start() {
    co_await retention_.ensure_scheduled(scheduler_.tasks());
    co_await ensure_db_retention_task();
    if (settings_.load > 0) {
      verdict_ = co_await self_test();
      app_.request_stop();
    }
  }

  // ---- the self-test (scripts/demo access_events) -----------------------------------------

  asio::awaitable<int> self_test() {
    std::cout << "== " << settings_.load << " requests over " << settings_.connections
              << " connections" << std::endl;
    auto load = co_await run_load(http_.port(), settings_.load, settings_.connections);
    std::cout << "   answered " << load.sent << " in " << std::fixed << std::setprecision(2)
              << load.seconds << " s (" << std::setprecision(0) << load.sent / load.seconds
              << " req/s), latency p50 " << std::setprecision(2)
              << percentile(load.latencies_ms, 50) << " ms, p99 "
              << percentile(load.latencies_ms, 99) << " ms" << std::endl;
    // Every event through the stream into the table.
    const auto started = std::chrono::steady_clock::now();
    std::int64_t rows = 0;
    while (std::chrono::steady_clock::now() - started < 60s) {
      rows = co_await store_.count();
      if (rows >= static_cast<std::int64_t>(load.sent) && events_.buffered() == 0) {
        break;
      }
      co_await corvo::sleep_for(20ms);
    }
    const double drain_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << "   stored " << rows << " rows " << std::setprecision(2) << drain_s
              << " s after the last response (" << writer_.batches() << " insert batches)"
              << std::endl;

    std::vector<std::string> failures;
    auto check = [&](bool ok, const std::string& what) {
      std::cout << (ok ? "   ok    " : "   FAIL  ") << what << "\n";
      if (!ok) {
        failures.push_back(what);
      }
    };
    check(load.failed == 0, "every request answered (" + std::to_string(load.failed) + " failed)");
    check(events_.stats().dropped == 0, "no event dropped");
    check(rows == static_cast<std::int64_t>(load.sent),
          "every event stored exactly once (" + std::to_string(rows) + " rows for " +
              std::to_string(load.sent) + " requests)");
    for (const auto& [day, sent] : load.per_day) {
      auto [status, body] =
          co_await http_get(http_.port(), "/admin/api/v1/event/access/summary/" + day);
      const auto summary = json::parse(body).at("categories").as_object();
      bool same = status == 200;
      for (const auto& category : categories()) {
        const auto want = sent.contains(category) ? sent.at(category) : 0;
        same = same && summary.at(category).as_int64() == want;
      }
      check(same, "summary of " + day + " matches the requests made: " + body);
    }
    if (!failures.empty()) {
      std::cout << "FAILED: " << failures.size() << " check(s)" << std::endl;
      co_return 1;
    }
    std::cout << "OK access_events: " << load.sent << " requests, " << rows
              << " events stored once each, summary matches" << std::endl;
    co_return 0;
  }

  static constexpr std::string_view db_retention_type = "access_events.db_retention";

  health::app app_;
  db::database database_;
  event_store store_;
  batch_writer writer_;
  redis::client redis_;
  event_buffer events_;
  stream::consumer consumer_;
  schedule::scheduler scheduler_;
  stream::retention_job retention_;
  http_server http_;
  settings settings_;
  // event ids: unique per process start (ms of the start) and request
  std::string event_prefix_ = std::to_string(now_ms()) + "-";
  std::uint64_t sequence_ = 0;
  std::optional<int> verdict_;  // the self-test's, or 1 when starting failed
};

}  // namespace access_events

int main(int argc, char** argv) {
  access_events::settings s;
  po::options_description options("access_events");
  options.add_options()("help", "this help")("redis", po::value(&s.redis_url),
                                             "Redis URL (redis://host:port)")(
      "database", po::value(&s.database)->default_value(s.database),
      "sqlite:PATH, sqlite::memory: or postgresql://…")(
      "listen", po::value(&s.listen)->default_value(s.listen),
      "HTTP address host:port (port 0: any)")("load", po::value(&s.load),
                                              "send this many requests to itself, check, and exit")(
      "connections", po::value(&s.connections)->default_value(s.connections),
      "concurrent connections of --load")("config", po::value(&s.config_file),
                                          "configuration file (JSON) instead of the built-in one")(
      "print-config", "print the built-in configuration and exit");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "access_events: " << e.what() << "\n" << options << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  if (vm.count("print-config")) {
    std::cout << access_events::default_config(s) << "\n";
    return 0;
  }
  if (s.redis_url.empty() && s.config_file.empty()) {
    std::cerr << "access_events: --redis or --config is required\n";
    return 2;
  }
  return corvo::samples::guarded_main("access_events", [&] {
    auto cfg = s.config_file.empty()
                   ? corvo::config::from_string(access_events::default_config(s), "built-in")
                   : corvo::config::from_file(s.config_file);
    cfg.apply_environment();
    access_events::access_events_service service(cfg, s);
    return service.run();
  });
}
