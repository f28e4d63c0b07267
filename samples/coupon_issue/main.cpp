// coupon_issue: first-come coupon issuance, on corvo.
//
// `POST /api/coupons/{id}/issue?userId=N` numbers the request and puts it on a queue: a
// reliable Redis queue, or a Kafka topic keyed by coupon id (`coupon_issue.queue`). The
// answer (202, with the request id) comes once the request is in the queue. A processor
// takes the requests in arrival order, decides each one in memory against the coupons'
// state (SUCCESS, VALIDATION_FAILED, DUPLICATE_REQUEST, OUT_OF_STOCK, BUSINESS_ERROR,
// SYSTEM_ERROR), commits the decisions in batches (one transaction each) to the database
// (SQLite by default, PostgreSQL for a postgresql:// URL), and only then acknowledges them.
// `GET /api/coupons/requests/{requestId}` answers a request's outcome (PENDING until then).
//
//   HTTP ─▶ request_sender ─(batch, in order)─▶ Redis queue | Kafka topic (key: coupon)
//                                                    │
//        processor: issuer (in memory, in order) ◀───┘ ─▶ one transaction per batch ─▶ ack
//
// Roles (`--role`): all (API and processor in one process, the default), api, processor:
// several API processes may serve one queue; one processor decides (its state in memory is
// authoritative, reloaded from the database at start).
//
//   coupon_issue --redis redis://127.0.0.1:6379 [--queue redis|kafka] [--kafka embedded:1]
//                [--database sqlite:coupon_issue.db] [--listen 127.0.0.1:8080]
//                [--coupons 1:50,2:50] [--role all|api|processor] [--config file.json]
//   coupon_issue --redis … --demo --users 10000 --stock 100   # both queue modes, checks
//
// Configuration: the built-in JSON below (--print-config), or --config FILE; CORVO_*
// environment variables override either (CORVO_COUPON_ISSUE__QUEUE=kafka).

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/log.hpp>
#include <corvo/health/app.hpp>
#include <corvo/health/probes.hpp>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/queue/reliable_queue.hpp>
#include <db/database.hpp>
#include <functional>
#include <http/load.hpp>
#include <iomanip>
#include <iostream>
#include <optional>
#include <regex>
#include <sample/main.hpp>

#include "checks.hpp"
#include "coupon_store.hpp"
#include "http_server.hpp"
#include "load_client.hpp"
#include "queues.hpp"

namespace json = boost::json;
namespace po = boost::program_options;
namespace health = corvo::health;
namespace redis = corvo::redis;
namespace kafka = corvo::kafka;
using namespace std::chrono_literals;
using access_events::http_request;
using access_events::http_response;
using access_events::json_response;
namespace http = access_events::http;

namespace coupon_issue {

// ---- configuration ----------------------------------------------------------------------

struct settings {
  std::string redis_url;
  std::string kafka = "embedded:1";
  std::string database = "sqlite:coupon_issue.db";
  std::string listen = "127.0.0.1:8080";
  std::string queue = "redis";
  std::string role = "all";
  std::string coupons = "1:100";
  std::uint64_t crash_after = 0;
  std::string config_file;
  // --demo
  bool demo = false;
  std::string queues = "redis,kafka";
  std::size_t users = 10'000;
  std::int64_t stock = 100;
  std::size_t coupon_count = 10;
  std::size_t connections = 64;
};

std::string default_config(const settings& s) {
  json::value document = {
      {"redis", {{"url", s.redis_url}}},
      {"health", {{"probe_interval", "200ms"}, {"probe_timeout", "500ms"}}},
      {"kafka",
       {{"bootstrap.servers", s.kafka},
        {"corvo.embedded.topics", json::array{"coupon-requests:16", "coupon-requests.dlq:1"}},
        {"producer", {{"linger.ms", 1}}},
        {"consumer",
         {{"group.id", "coupon-processor"},
          {"fetch.wait.max.ms", 1},
          {"session.timeout.ms", 3000},
          {"heartbeat.interval.ms", 300}}}}},
      {"coupon_issue",
       {{"listen", s.listen},
        {"database", s.database},
        {"queue", s.queue},
        {"role", s.role},
        {"coupons", s.coupons},
        {"crash_after_batches", s.crash_after},
        {"send_batch", 1000},
        {"write_batch", 2000},
        {"topic", "coupon-requests"},
        {"partitions_in_flight", 16},
        {"handlers_per_partition", 256},
        {"redis_queue",
         {{"name", "coupon-requests"},
          {"consumer", "coupon-processor"},
          {"max_in_flight", 4000},
          {"batch", 1000},
          {"drain_timeout", "800ms"},
          {"heartbeat_ttl", "5s"}}}}}};
  return json::serialize(document);
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void log_failure(std::string_view what, std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    std::cerr << "coupon_issue: " << what << ": " << x.what() << std::endl;
  }
}

// ---- the service: API, processor, or both ---------------------------------------------------

class coupon_service {
 public:
  coupon_service(health::app& app, const corvo::config& cfg)
      : app_(app),
        cfg_(cfg),
        mode_(queue_mode_from(cfg.get<std::string>("coupon_issue.queue"))),
        role_(cfg.get<std::string>("coupon_issue.role")),
        database_({.url = cfg.get<std::string>("coupon_issue.database")}),
        store_(database_),
        redis_(app.get_executor(), redis::client_config::from(cfg)),
        kafka_config_(kafka::client_config::from(cfg)),
        topic_(cfg.get<std::string>("coupon_issue.topic")) {
    if (role_ != "all" && role_ != "api" && role_ != "processor") {
      throw std::invalid_argument("role must be all, api or processor");
    }
    // Read every key now: unknown ones are refused before anything starts.
    queue_options_ = corvo::queue::queue_options::from(cfg, "coupon_issue.redis_queue");
    partitions_in_flight_ = cfg.get<std::size_t>("coupon_issue.partitions_in_flight");
    handlers_per_partition_ = cfg.get<std::size_t>("coupon_issue.handlers_per_partition");
    const auto coupons = parse_coupons(cfg.get<std::string>("coupon_issue.coupons"));
    const auto send_batch = cfg.get<std::size_t>("coupon_issue.send_batch");
    const auto write_batch = cfg.get<std::size_t>("coupon_issue.write_batch");
    const auto crash_after = cfg.get<std::uint64_t>("coupon_issue.crash_after_batches");
    const auto listen = cfg.get<std::string>("coupon_issue.listen");
    cfg.reject_unknown_keys("coupon_issue");
    if (mode_ == queue_mode::kafka) {
      embedded_ = kafka_config_.embedded();  // the in-process Kafka (null for a real one)
    }
    if (role_ != "processor") {
      if (mode_ == queue_mode::redis) {
        sender_ = std::make_unique<request_sender>(app.get_executor(), redis_, queue_options_.name,
                                                   send_batch);
      } else {
        sender_ =
            std::make_unique<request_sender>(app.get_executor(), kafka_config_, topic_, send_batch);
      }
      http_ = std::make_unique<access_events::http_server>(
          app.get_executor(), listen.substr(0, listen.rfind(':')),
          static_cast<unsigned short>(std::stoul(listen.substr(listen.rfind(':') + 1))),
          [this](const http_request& r) { return route(r); },
          [](const http_request&, const http_response&) {});
    }
    if (role_ != "api") {
      processor_ =
          std::make_unique<processor>(app.get_executor(), store_, write_batch, crash_after);
    }
    setup(coupons);
  }

  /// Registers the services and components with the app (then app.run()).
  void start() {
    app_.add_service("redis", [this] { return redis_.run(); });
    auto redis_up = app_.add_dependency("redis", health::redis_ping_probe(redis_));
    health::reset_when_down(redis_up, redis_);  // a hung Redis holds no stop
    if (sender_) {
      app_.add_service("sender", [this] { return sender_->run(); });
      app_.add_service("http", [this] { return http_->run(); });
      std::cout << "coupon_issue: listening on 127.0.0.1:" << http_->port() << ", queue "
                << to_string(mode_) << ", database "
                << (database_.kind() == db::backend::sqlite ? "SQLite" : "PostgreSQL") << std::endl;
    }
    if (embedded_) {
      std::cout << "coupon_issue: embedded Kafka at " << embedded_->bootstrap_servers()
                << std::endl;
    }
    if (processor_) {
      app_.add_service("writer", [this] { return processor_->run_writer(); });
      if (mode_ == queue_mode::redis) {
        app_.add_component({"processor", [this] { return consume_redis(); }}, {redis_up});
      } else {
        app_.add_component({"processor", [this] { return consume_kafka(); }}, {});
      }
    }
  }

  processor* processing() { return processor_.get(); }
  request_sender* sending() { return sender_.get(); }
  db::database& database() { return database_; }
  unsigned short port() const { return http_ ? http_->port() : 0; }
  queue_mode mode() const { return mode_; }
  /// True once the processor takes requests (Kafka: partitions assigned).
  bool ready() const { return ready_; }

 private:
  // The tables, the coupons, and the processor's state, before anything serves.
  void setup(const std::vector<coupon_definition>& coupons) {
    asio::io_context loop;
    std::exception_ptr failed;
    asio::co_spawn(
        loop,
        [&]() -> asio::awaitable<void> {
          co_await store_.create_schema(coupons);
          if (processor_) {
            co_await processor_->load();
          }
        },
        [&](std::exception_ptr e) { failed = e; });
    loop.run();
    if (failed) {
      std::rethrow_exception(failed);
    }
  }

  asio::awaitable<void> consume_redis() {
    auto* p = processor_.get();
    corvo::queue::reliable_queue queue(redis_, queue_options_, [p](const corvo::queue::item& item) {
      return handle_queue_item(p, item.body);
    });
    ready_ = true;
    std::cout << "coupon_issue: processor ready (Redis queue " << queue_options_.name << ")"
              << std::endl;
    co_await queue.run();
  }

  asio::awaitable<void> consume_kafka() {
    auto* p = processor_.get();
    kafka::consumer_options options;
    options.topics = {topic_};
    options.max_partitions_in_flight = partitions_in_flight_;
    // Pipelined: a handler decides at once and then waits for the group commit, so one
    // partition's requests share a commit instead of paying one each.
    options.max_in_flight_per_partition = handlers_per_partition_;
    options.dead_letter_topic = "{topic}.dlq";
    options.shutdown_timeout = 800ms;
    options.close_timeout = 2s;
    options.on_assigned = [this](const std::vector<kafka::topic_partition>& assigned) {
      if (!ready_ && !assigned.empty()) {
        ready_ = true;
        std::cout << "coupon_issue: processor ready (Kafka topic " << topic_ << ")" << std::endl;
      }
    };
    kafka::consumer consumer(app_.get_executor(), kafka_config_, options);
    co_await consumer.run(
        [p](const kafka::message& m) { return handle_kafka_message(p, m.value()); });
  }

  // ---- the HTTP API ----------------------------------------------------------------------

  asio::awaitable<http_response> route(const http_request& request) {
    const std::string_view full = request.target();
    const std::string target(full.substr(0, full.find('?')));
    const std::string query(full.find('?') == std::string_view::npos
                                ? std::string_view()
                                : full.substr(full.find('?') + 1));
    static const std::regex issue_path(R"(/api/coupons/([^/]+)/issue)");
    static const std::regex status_path(R"(/api/coupons/requests/([^/]+))");
    static const std::regex coupon_path(R"(/api/coupons/(\d+))");
    std::smatch match;
    if (std::regex_match(target, match, issue_path)) {
      if (request.method() != http::verb::post) {
        co_return json_response(request, http::status::method_not_allowed,
                                R"({"error":"POST only"})");
      }
      std::string coupon = match[1];
      std::string user = parameter(query, "userId");
      co_return co_await issue(request, std::move(coupon), std::move(user));
    }
    if (request.method() != http::verb::get) {
      co_return json_response(request, http::status::method_not_allowed, R"({"error":"GET"})");
    }
    if (std::regex_match(target, match, status_path)) {
      const std::string id = match[1];
      auto row = co_await store_.status(id);
      json::object body{{"requestId", id}, {"status", row ? row->outcome : "PENDING"}};
      if (row) {
        body["couponId"] = row->coupon_id;
        body["userId"] = row->user_id;
        body["detail"] = row->detail;
      }
      co_return json_response(request, http::status::ok, json::serialize(body));
    }
    if (target == "/api/coupons/stats") {
      const auto body = co_await stats();
      co_return json_response(request, http::status::ok, json::serialize(body));
    }
    if (std::regex_match(target, match, coupon_path)) {
      std::int64_t issued = 0;
      const std::int64_t id = std::stoll(match[1]);
      auto c = co_await store_.coupon(id, &issued);
      if (!c) {
        co_return json_response(request, http::status::not_found, R"({"error":"no such coupon"})");
      }
      json::object body{{"id", c->id},
                        {"stock", c->stock},
                        {"issued", issued},
                        {"remaining", c->stock - issued},
                        {"active", c->active}};
      co_return json_response(request, http::status::ok, json::serialize(body));
    }
    co_return json_response(request, http::status::not_found, R"({"error":"not found"})");
  }

  static std::string parameter(const std::string& query, std::string_view name) {
    std::size_t at = 0;
    while (at < query.size()) {
      auto end = query.find('&', at);
      if (end == std::string::npos) {
        end = query.size();
      }
      const auto pair = std::string_view(query).substr(at, end - at);
      if (pair.substr(0, pair.find('=')) == name && pair.find('=') != std::string_view::npos) {
        return std::string(pair.substr(pair.find('=') + 1));
      }
      at = end + 1;
    }
    return {};
  }

  asio::awaitable<http_response> issue(const http_request& request, std::string coupon,
                                       std::string user) {
    coupon_issue::issue_request r;
    r.coupon = std::move(coupon);
    r.user = std::move(user);
    try {
      co_await sender_->send(r);
    } catch (const std::exception& e) {
      json::object body{{"error", std::string("not queued: ") + e.what()}};
      co_return json_response(request, http::status::service_unavailable, json::serialize(body));
    }
    json::object body{{"requestId", r.id}, {"status", "PENDING"}};
    co_return json_response(request, http::status::accepted, json::serialize(body));
  }

  asio::awaitable<json::object> stats() {
    json::object outcomes;
    for (const auto& [name, n] : co_await store_.outcome_counts()) {
      outcomes[name] = n;
    }
    json::object out{{"queue", std::string(to_string(mode_))}, {"outcomes", outcomes}};
    if (sender_) {
      out["accepted"] = sender_->accepted();
      out["send_failures"] = sender_->failed();
      out["send_batches"] = sender_->batches();
    }
    if (processor_) {
      const auto& p = processor_->stats();
      out["processor"] = {{"decided", p.decided},
                          {"recognised", p.recognised},
                          {"batches", p.batches},
                          {"write_retries", p.write_retries}};
    }
    co_return out;
  }

  health::app& app_;
  const corvo::config& cfg_;
  queue_mode mode_;
  std::string role_;
  db::database database_;
  coupon_store store_;
  redis::client redis_;
  kafka::client_config kafka_config_;
  std::shared_ptr<kafka::embedded_cluster> embedded_;
  std::string topic_;
  corvo::queue::queue_options queue_options_;
  std::size_t partitions_in_flight_ = 16;
  std::size_t handlers_per_partition_ = 256;
  std::unique_ptr<request_sender> sender_;
  std::unique_ptr<access_events::http_server> http_;
  std::unique_ptr<processor> processor_;
  bool ready_ = false;
};

// ---- the demo: both queue modes, the same load, side by side -----------------------------

struct mode_result {
  queue_mode mode;
  std::size_t requests = 0;
  double p50 = 0, p99 = 0;   // request latency, ms
  double load_s = 0;         // all requests answered
  double outcomes_s = 0;     // from the first request until every request had an outcome
  double processing_ms = 0;  // processor: first decision to last commit
  std::uint64_t batches = 0;
  verdict checked;
  // The backlog: the same requests queued with no processor running, then drained.
  double backlog_drain_ms = 0;  // processor: first decision to last commit
  std::uint64_t backlog_batches = 0;
  verdict backlog_checked;
};

asio::awaitable<void> demo_load(coupon_service& service, const load_plan& plan,
                                std::size_t connections, mode_result& out) {
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (!service.ready()) {  // the embedded Kafka's first group join takes about 3 s
    if (std::chrono::steady_clock::now() > until) {
      throw std::runtime_error("the processor did not start");
    }
    co_await corvo::sleep_for(20ms);
  }
  const auto started = std::chrono::steady_clock::now();
  auto load = co_await fire(service.port(), plan.calls, connections);
  std::int64_t decided = 0;
  const auto want = static_cast<std::int64_t>(service.sending()->accepted());
  while (decided < want && std::chrono::steady_clock::now() < until) {
    decided = co_await decided_count(service.database());
    if (decided < want) {
      co_await corvo::sleep_for(5ms);
    }
  }
  out.outcomes_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::vector<double> latencies;
  for (const auto& r : load.replies) {
    latencies.push_back(r.latency_ms);
  }
  out.requests = plan.calls.size();
  out.p50 = corvo::samples::http::percentile(latencies, 50);
  out.p99 = corvo::samples::http::percentile(latencies, 99);
  out.load_s = load.seconds;
  const auto& p = service.processing()->stats();
  out.processing_ms =
      std::chrono::duration<double, std::milli>(p.last_commit - p.first_decision).count();
  out.batches = p.batches;
  out.checked = co_await verify(service.database(), plan, load);
}

// The backlog phase, API side: only sends.
asio::awaitable<void> fill_backlog(coupon_service& service, const load_plan& plan,
                                   std::size_t connections, issue_load& out) {
  out = co_await fire(service.port(), plan.calls, connections);
}

// The backlog phase, processor side: drains what the API queued, then checks.
asio::awaitable<void> drain_backlog(coupon_service& service, const load_plan& plan,
                                    const issue_load& load, mode_result& out) {
  const auto until = std::chrono::steady_clock::now() + 60s;
  std::int64_t decided = 0;
  const auto want = static_cast<std::int64_t>(plan.calls.size());
  while (decided < want && std::chrono::steady_clock::now() < until) {
    decided = co_await decided_count(service.database());
    if (decided < want) {
      co_await corvo::sleep_for(5ms);
    }
  }
  const auto& p = service.processing()->stats();
  out.backlog_drain_ms =
      std::chrono::duration<double, std::milli>(p.last_commit - p.first_decision).count();
  out.backlog_batches = p.batches;
  out.backlog_checked = co_await verify(service.database(), plan, load);
}

// The configuration of one demo run: `mode`, `role`, the plan's coupons, queue `queue`.
corvo::config demo_config(const settings& s, queue_mode mode, const std::string& role,
                          const load_plan& plan, const std::string& queue) {
  auto cfg = corvo::config::from_string(default_config(s), "built-in");
  cfg.apply_environment();
  cfg.set("coupon_issue.queue", json::string(to_string(mode)));
  cfg.set("coupon_issue.role", json::string(role));
  cfg.set("coupon_issue.coupons", json::string(coupons_text(plan.coupons)));
  cfg.set("coupon_issue.redis_queue.name", json::string(queue));
  return cfg;
}

// A fresh start: the demo empties the sample's tables.
void drop_tables(const std::string& url) {
  db::database database({.url = url});
  asio::io_context loop;
  std::exception_ptr failed;
  asio::co_spawn(
      loop,
      [&]() -> asio::awaitable<void> {
        co_await database.execute("DROP TABLE IF EXISTS coupon_request");
        co_await database.execute("DROP TABLE IF EXISTS issued_coupon");
        co_await database.execute("DROP TABLE IF EXISTS coupon");
      },
      [&](std::exception_ptr e) { failed = e; });
  loop.run();
  if (failed) {
    std::rethrow_exception(failed);
  }
}

// Runs an app of `cfg` with `work` (made from its service) until `work` returns; false
// (and the error on stderr) when it failed.
bool run_app(const corvo::config& cfg, const std::string& what,
             const std::function<asio::awaitable<void>(coupon_service&)>& work) {
  health::app app(health::app_options::from(cfg));
  coupon_service service(app, cfg);
  service.start();
  bool finished = false;
  asio::co_spawn(app.get_executor(), work(service), [&](std::exception_ptr e) {
    if (e) {
      log_failure(what, e);
    } else {
      finished = true;
    }
    app.request_stop();
  });
  app.run();
  return finished;
}

// Runs one queue mode of the demo: live (API and processor together), then the backlog
// (the API fills the queue, then a processor alone drains it).
mode_result run_mode(const settings& s, queue_mode mode, const load_plan& plan) {
  const std::string name(to_string(mode));
  mode_result result;
  result.mode = mode;
  const auto live = demo_config(s, mode, "all", plan, "coupon-live-" + std::to_string(now_ms()));
  drop_tables(live.get<std::string>("coupon_issue.database"));
  if (!run_app(live, name + " live", [&](coupon_service& service) {
        return demo_load(service, plan, s.connections, result);
      })) {
    result.checked.checks.emplace_back(false, "the live run did not finish");
  }

  std::cout << "   backlog: queueing the same requests with no processor running" << std::endl;
  const auto queue = "coupon-backlog-" + std::to_string(now_ms());
  const auto api = demo_config(s, mode, "api", plan, queue);
  drop_tables(api.get<std::string>("coupon_issue.database"));
  issue_load backlog;
  if (!run_app(api, name + " backlog", [&](coupon_service& service) {
        return fill_backlog(service, plan, s.connections, backlog);
      })) {
    result.backlog_checked.checks.emplace_back(false, "the backlog was not queued");
    return result;
  }
  const auto processing = demo_config(s, mode, "processor", plan, queue);
  if (!run_app(processing, name + " drain", [&](coupon_service& service) {
        return drain_backlog(service, plan, backlog, result);
      })) {
    result.backlog_checked.checks.emplace_back(false, "the backlog was not drained");
  }
  return result;
}

int run_demo(const settings& s) {
  plan_options o;
  o.users = s.users;
  o.stock = s.stock;
  o.coupons = s.coupon_count;
  const auto plan = make_plan(o);
  std::cout << "== " << plan.calls.size() << " issuance requests from " << s.users
            << " users (every 10th asks twice, plus invalid ones) for " << s.coupon_count
            << " coupons with " << plan.stock << " in stock, over " << s.connections
            << " connections" << std::endl;
  std::vector<mode_result> results;
  for (std::size_t at = 0; at < s.queues.size();) {
    auto end = s.queues.find(',', at);
    if (end == std::string::npos) {
      end = s.queues.size();
    }
    const auto mode = queue_mode_from(s.queues.substr(at, end - at));
    at = end + 1;
    std::cout << "-- queue = " << to_string(mode) << std::endl;
    results.push_back(run_mode(s, mode, plan));
  }
  auto row = [&](const std::string& label, auto value) {
    std::cout << "   " << std::left << std::setw(36) << label << std::right;
    for (const auto& r : results) {
      std::cout << std::setw(12) << value(r);
    }
    std::cout << "\n";
  };
  std::cout << std::fixed << std::setprecision(2);
  row("", [](const mode_result& r) { return std::string(to_string(r.mode)); });
  row("requests", [](const mode_result& r) { return std::to_string(r.requests); });
  row("latency p50 (ms)", [](const mode_result& r) { return r.p50; });
  row("latency p99 (ms)", [](const mode_result& r) { return r.p99; });
  row("all answered after (s)", [](const mode_result& r) { return r.load_s; });
  row("every request had an outcome (s)", [](const mode_result& r) { return r.outcomes_s; });
  row("processing, 1st decision->last (ms)", [](const mode_result& r) { return r.processing_ms; });
  row("commits (batches)", [](const mode_result& r) { return std::to_string(r.batches); });
  row("backlog drained, 1st decision->last (ms)",
      [](const mode_result& r) { return r.backlog_drain_ms; });
  row("backlog drain rate (requests/s)", [](const mode_result& r) {
    return std::to_string(static_cast<long long>(
        r.backlog_drain_ms > 0 ? static_cast<double>(r.requests) * 1000.0 / r.backlog_drain_ms
                               : 0));
  });
  row("backlog commits (batches)",
      [](const mode_result& r) { return std::to_string(r.backlog_batches); });
  for (auto o : all_outcomes()) {
    const std::string name(to_string(o));
    row(name, [&](const mode_result& r) {
      const auto it = r.checked.outcomes.find(name);
      return std::to_string(it == r.checked.outcomes.end() ? 0 : it->second);
    });
  }
  std::size_t failures = 0;
  for (const auto& r : results) {
    for (const auto* checked : {&r.checked, &r.backlog_checked}) {
      for (const auto& [held, what] : checked->checks) {
        std::cout << (held ? "   ok    " : "   FAIL  ") << to_string(r.mode)
                  << (checked == &r.checked ? " live: " : " backlog: ") << what << "\n";
        failures += !held;
      }
    }
  }
  if (failures != 0 || results.empty()) {
    std::cout << "FAILED: " << failures << " check(s)" << std::endl;
    return 1;
  }
  std::cout << "OK coupon_issue: " << plan.calls.size() << " requests in each of " << results.size()
            << " queue modes (live, and from a backlog), exactly " << plan.stock
            << " coupons issued, no user twice, every request one outcome, in arrival order"
            << std::endl;
  return 0;
}

}  // namespace coupon_issue

int main(int argc, char** argv) {
  using namespace coupon_issue;
  settings s;
  po::options_description options("coupon_issue: first-come coupon issuance");
  options.add_options()("help", "this help")("redis", po::value(&s.redis_url),
                                             "Redis URL (redis://host:port)")(
      "kafka", po::value(&s.kafka)->default_value(s.kafka),
      "Kafka bootstrap servers, or embedded:N for the in-process cluster")(
      "database", po::value(&s.database)->default_value(s.database),
      "sqlite:PATH or postgresql://…")("listen", po::value(&s.listen)->default_value(s.listen),
                                       "HTTP address host:port (port 0: any)")(
      "queue", po::value(&s.queue)->default_value(s.queue), "redis or kafka")(
      "role", po::value(&s.role)->default_value(s.role), "all, api or processor")(
      "coupons", po::value(&s.coupons)->default_value(s.coupons),
      "coupons to create if missing: ID:STOCK[:inactive],…")(
      "crash-after", po::value(&s.crash_after),
      "processor: SIGKILL itself after committing this many batches (tests)")(
      "config", po::value(&s.config_file), "configuration file (JSON) instead of the built-in one")(
      "print-config", "print the built-in configuration and exit")(
      "demo", po::bool_switch(&s.demo), "run the load in each queue mode, check, print, exit")(
      "queues", po::value(&s.queues)->default_value(s.queues), "--demo: the modes to run")(
      "users", po::value(&s.users)->default_value(s.users), "--demo: users asking")(
      "stock", po::value(&s.stock)->default_value(s.stock), "--demo: coupons in stock in all")(
      "coupon-count", po::value(&s.coupon_count)->default_value(s.coupon_count),
      "--demo: coupons (the stock is split over them)")(
      "connections", po::value(&s.connections)->default_value(s.connections),
      "--demo: concurrent HTTP connections");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "coupon_issue: " << e.what() << "\n" << options << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  if (vm.count("print-config")) {
    std::cout << default_config(s) << "\n";
    return 0;
  }
  if (s.redis_url.empty() && s.config_file.empty()) {
    std::cerr << "coupon_issue: --redis or --config is required\n";
    return 2;
  }
  if (s.demo && (s.users == 0 || s.coupon_count == 0 || s.stock <= 0 ||
                 static_cast<std::size_t>(s.stock) > s.users)) {
    std::cerr << "coupon_issue: --demo needs --users >= --stock > 0 and --coupon-count > 0\n";
    return 2;
  }
  return corvo::samples::guarded_main("coupon_issue", [&] {
    corvo::log::options log;
    log.min_severity = corvo::log::severity::warning;
    corvo::log::init(log);
    if (s.demo) {
      return run_demo(s);
    }
    auto cfg = s.config_file.empty() ? corvo::config::from_string(default_config(s), "built-in")
                                     : corvo::config::from_file(s.config_file);
    cfg.apply_environment();
    health::app app(health::app_options::from(cfg));
    coupon_service service(app, cfg);
    service.start();
    const auto result = app.run();
    if (const auto* p = service.processing()) {
      const auto& stats = p->stats();
      std::cout << "coupon_issue: processor: decided " << stats.decided << ", recognised "
                << stats.recognised << " (delivered again), " << stats.batches << " commits, "
                << stats.write_retries << " retried" << std::endl;
    }
    return corvo::samples::exit_code("coupon_issue", result, std::nullopt, false);
  });
}
