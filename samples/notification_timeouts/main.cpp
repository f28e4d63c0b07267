// notification_timeouts: corvo's main demo.
//
// A notification service sends e-mails and, for each one, schedules a "send time-out" task:
// if the provider has not confirmed delivery by then, the time-out handler escalates (here:
// it records that it ran). Most confirmations arrive in time and cancel the task; the rest
// fire, exactly at their due time, through Kafka.
//
//   Redis (sorted sets, Lua claims) ──due──▶ dispatcher ──publish──▶ Kafka topic
//                                                     consumer group ──▶ time-out handler
//
// The program schedules --tasks time-outs due over --over seconds, cancels --confirm of
// them shortly before they are due (delivery confirmed), shows a progress line while the
// rest fire, and ends with a lateness histogram (handler start − due time) and a check: every
// time-out not cancelled ran exactly once, none before its due time, none cancelled in time
// ran. A confirmation is in time when its cancel() returned before the dispatcher could claim
// the task: earlier than its due time minus the claim window (scheduler.redis.claim_ahead_us)
// minus 1 ms for the clocks of this host and the Redis server (the throwaway server shares
// this host's). One that returned later (an overloaded machine delays the confirmations) may
// have found the task in flight: cancel() removes it, but a run that had started goes on, so
// such a time-out may run, at most once; the report counts these apart. Exit code 0 when the
// check holds.
//
//   notification_timeouts --redis redis://127.0.0.1:6379 [--kafka embedded:1]
//                         [--tasks 5000] [--over 5] [--confirm 0.2] [--config file.json]
//
// Configuration: the built-in JSON below (printed by --print-config), or --config FILE;
// CORVO_* environment variables override either (CORVO_SCHEDULER__MAX_IN_FLIGHT=64).

#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/health/app.hpp>
#include <corvo/health/probes.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sample/main.hpp>
#include <set>
#include <sstream>

#include "lateness.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace po = boost::program_options;
namespace redis = corvo::redis;
namespace schedule = corvo::schedule;
using namespace std::chrono_literals;

namespace notification_timeouts {

// ---- the task's payload, typed through Boost.JSON -------------------------------------------

struct send_timeout {
  std::string notification;  // the notification whose delivery is awaited
  std::string recipient;
  std::string channel;  // "email", "sms"
};

void tag_invoke(json::value_from_tag, json::value& v, const send_timeout& t) {
  v = {{"notification", t.notification}, {"recipient", t.recipient}, {"channel", t.channel}};
}

send_timeout tag_invoke(json::value_to_tag<send_timeout>, const json::value& v) {
  const auto& o = v.as_object();
  return {json::value_to<std::string>(o.at("notification")),
          json::value_to<std::string>(o.at("recipient")),
          json::value_to<std::string>(o.at("channel"))};
}

// ---- settings -------------------------------------------------------------------------------

struct settings {
  std::string redis_url;
  std::string kafka = "embedded:1";
  std::size_t tasks = 5000;
  double over_seconds = 5;
  double confirm = 0.2;
  std::string config_file;
};

// The health monitor takes Redis down after two failed PINGs in a row (500 ms each), not one:
// a single slow answer on an overloaded machine does not stop the run, and a dead server
// is still down within about 1.5 s (a connection loss counts as a failure at once).
std::string default_config(const settings& s) {
  json::object cfg = {{"redis", {{"url", s.redis_url}}},
                      {"health", {{"failures_to_down", 2}}},
                      {"scheduler",
                       {{"provider", "redis-kafka"},
                        {"namespace", "notifications"},
                        {"shards", 8},
                        {"max_in_flight", 256},
                        {"kafka", {{"topic", "notification.timeouts"}}}}},
                      {"kafka",
                       {{"bootstrap.servers", s.kafka},
                        {"corvo.embedded.topics",
                         json::array{"notification.timeouts:8", "notification.timeouts.dlq:1"}},
                        {"consumer",
                         {{"group.id", "notification-timeouts"},
                          {"fetch.wait.max.ms", 1},
                          {"session.timeout.ms", 6000},
                          {"heartbeat.interval.ms", 500}}}}}};
  return json::serialize(cfg);
}

// ---- the run --------------------------------------------------------------------------------

struct progress {
  std::size_t scheduled = 0;
  std::size_t cancelled = 0;
  std::size_t fired = 0;
  std::map<std::string, int> runs;  // notification id -> handler runs
  std::set<std::string> confirmed;  // cancelled before the task could be claimed
  // Cancelled, but cancel() returned after the claim window opened: id -> how late the
  // confirmation was (after due - 100 ms, when it was meant to go out).
  std::map<std::string, std::chrono::microseconds> confirmed_late;
  std::size_t awaited_fired = 0;  // ids neither confirmed nor late that have run
  lateness_histogram lateness;
};

// The demo's parts live in a corvo::health::app (the composition root): the Redis client is
// a service (it runs from start to the very end, so the dispatcher's last acks reach Redis),
// the scheduler a component supervised on the Redis dependency (PING probe: cancelled when
// Redis is down, restarted when it is back), and the scenario a component that starts once
// the scheduler runs and asks the app to stop when it is done. SIGINT/SIGTERM drain the
// components in reverse order: the scenario, then the scheduler (dispatcher drain, Kafka
// producer closed, consumer group left), then Redis.
class demo {
 public:
  demo(corvo::health::app& app, const corvo::config& cfg, settings s)
      : app_(app),
        settings_(std::move(s)),
        redis_(app.get_executor(), redis::client_config::from(cfg)),
        scheduler_(app.get_executor(), schedule::scheduler_options::from(cfg), &redis_,
                   redis::client_config::from(cfg)),
        claim_window_(scheduler_.options().redis.claim_ahead + 1ms) {
    scheduler_.handlers().on<send_timeout>("notification.send_timeout",
                                           [this](send_timeout timeout, const schedule::task& t) {
                                             return on_timeout(std::move(timeout), t);
                                           });
    app.add_service("redis", [this] { return redis_.run(); });
    const auto redis_up = app.add_dependency("redis", corvo::health::redis_ping_probe(redis_));
    corvo::health::reset_when_down(redis_up, redis_);  // a hung Redis holds no stop
    const auto scheduler =
        app.add_component({"scheduler", [this] { return scheduler_.run(); }}, {redis_up});
    app.add_component({"scenario", [this] { return run_scenario(); }}, {scheduler});
  }

  /// The check's verdict (0: it held), once the scenario has finished.
  std::optional<int> verdict() const { return verdict_; }

 private:
  // The scenario runs once: a restart (after an outage cancelled it, or after it failed)
  // ends the demo with a failed verdict instead of scheduling everything again.
  asio::awaitable<void> run_scenario() {
    if (scenario_started_) {
      std::cerr << "the scenario was interrupted (Redis or the scheduler stopped); not repeated\n";
      verdict_ = 1;
      stop_after_return();
      co_return;
    }
    scenario_started_ = true;
    try {
      verdict_ = co_await scenario();
    } catch (const boost::system::system_error& e) {
      if (e.code() == asio::error::operation_aborted) {
        throw;  // cancelled: SIGINT/SIGTERM, or the scheduler stopped
      }
      std::cerr << "notification_timeouts: failed: " << e.what() << "\n";
      verdict_ = 1;
    } catch (const std::exception& e) {
      std::cerr << "notification_timeouts: failed: " << e.what() << "\n";
      verdict_ = 1;
    }
    std::cout << "stopping: draining the dispatcher, closing the producer, leaving the group...\n";
    stop_after_return();
  }

  // Asks the app to stop once this component has returned (a stop requested from inside it
  // would cancel it mid-return, which its supervision would log as a failure).
  void stop_after_return() {
    asio::post(app_.get_executor(), [this] { app_.request_stop(); });
  }

  // `timeout` by value: the handler lambda's own parameter is gone once it has returned
  // this (lazily started) coroutine.
  asio::awaitable<void> on_timeout(send_timeout timeout, const schedule::task& t) {
    const auto lateness = schedule::now() - t.due;
    state_.lateness.add(std::chrono::duration_cast<std::chrono::microseconds>(lateness));
    if (++state_.runs[timeout.notification] == 1 && !is_confirmed(timeout.notification)) {
      ++state_.awaited_fired;
    }
    ++state_.fired;
    co_return;  // a real service would re-send through another channel or alert here
  }

  asio::awaitable<int> scenario() {
    auto* worker = scheduler_.kafka_worker();
    if (worker != nullptr) {
      std::cout << "waiting for the Kafka consumer group (the embedded Kafka takes about 3 s "
                   "to form it)...\n";
      const auto deadline = std::chrono::steady_clock::now() + 60s;
      while (worker->consumer().assignment().empty()) {
        if (std::chrono::steady_clock::now() > deadline) {
          std::cerr << "the consumer group got no partitions within 60 s\n";
          co_return 1;
        }
        co_await corvo::sleep_for(50ms);
      }
    }
    // Start from a clean namespace (a previous run against the same Redis).
    co_await scheduler_.purge("");
    const auto before = co_await scheduler_.stats();
    if (before.scheduled + before.in_flight > 0) {
      std::cerr << "namespace 'notifications' already holds " << before.scheduled + before.in_flight
                << " tasks; use a fresh Redis\n";
      co_return 1;
    }

    const auto ex = co_await asio::this_coro::executor;
    std::mt19937_64 random(42);
    const auto span =
        std::chrono::microseconds(static_cast<std::int64_t>(settings_.over_seconds * 1'000'000));
    // The first due time leaves the scheduling a head start (1 s, plus 20 us per task: 50,000
    // tasks are stored in about half of that), so no time-out falls due while the bulk
    // schedule still loads Redis, and every confirmation can go out 100 ms before its due
    // time.
    const auto start = schedule::now() + 1s + std::chrono::microseconds(20 * settings_.tasks);
    std::uniform_int_distribution<std::int64_t> offset(0, span.count());
    std::bernoulli_distribution confirmed(settings_.confirm);
    std::vector<std::pair<schedule::time_point, std::string>> to_confirm;

    std::cout << "scheduling " << settings_.tasks << " send time-outs due over "
              << settings_.over_seconds << " s; " << settings_.confirm * 100
              << "% get confirmed (cancelled) shortly before their due time\n";
    // Both groups are joined on every path (a Ctrl-C lands anywhere in here).
    corvo::task_group scheduling(ex);
    corvo::task_group confirming(ex);
    std::exception_ptr failed;
    try {
      std::vector<schedule::task> batch;
      batch.reserve(settings_.tasks);
      for (std::size_t i = 0; i < settings_.tasks; ++i) {
        schedule::task t;
        t.id = "notification-" + std::to_string(i);
        t.type = "notification.send_timeout";
        t.payload = json::value_from(send_timeout{
            t.id, "user" + std::to_string(i % 997) + "@example.com", i % 5 == 0 ? "sms" : "email"});
        t.due = start + std::chrono::microseconds(offset(random));
        t.max_attempts = 3;
        if (confirmed(random)) {
          to_confirm.emplace_back(t.due, t.id);
        }
        batch.push_back(std::move(t));
      }
      // One bulk schedule, pipelined per shard (scheduler::schedule_many).
      co_await scheduling.spawn(schedule_all(std::move(batch)));
      co_await scheduling.join();
      if (schedule::now() > start) {
        std::cout << "warning: scheduling took longer than its head start\n";
      }
      std::sort(to_confirm.begin(), to_confirm.end());
      co_await confirming.spawn(confirm_before_due(std::move(to_confirm)));
      co_await show_progress(span);
      co_await confirming.join();
    } catch (...) {
      failed = std::current_exception();
    }
    if (failed) {
      co_await asio::this_coro::reset_cancellation_state();
      scheduling.cancel();
      confirming.cancel();
      co_await join_quietly(scheduling);
      co_await join_quietly(confirming);
      std::rethrow_exception(failed);
    }
    co_await corvo::sleep_for(500ms);  // a duplicate run would show up now
    print_progress(::isatty(STDOUT_FILENO) != 0);
    std::cout << "\n\n";
    co_return co_await report();
  }

  static asio::awaitable<void> join_quietly(corvo::task_group& group) {
    try {
      co_await group.join();
    } catch (const std::exception&) {
    }
  }

  // A progress line until every time-out that was not confirmed has fired (or a minute
  // past the last due time).
  asio::awaitable<void> show_progress(std::chrono::microseconds span) {
    const bool tty = ::isatty(STDOUT_FILENO) != 0;
    const auto give_up = std::chrono::steady_clock::now() + span + 60s;
    auto last_line = std::chrono::steady_clock::now();
    for (;;) {
      const auto awaited = settings_.tasks - state_.confirmed.size() - state_.confirmed_late.size();
      if (confirmations_done_ && state_.awaited_fired >= awaited)
        break;
      if (std::chrono::steady_clock::now() > give_up)
        break;
      co_await corvo::sleep_for(100ms);
      const auto now = std::chrono::steady_clock::now();
      if (tty || now - last_line >= 1s) {
        last_line = now;
        print_progress(tty);
      }
    }
  }

  asio::awaitable<void> schedule_all(std::vector<schedule::task> tasks) {
    const std::size_t count = tasks.size();
    co_await scheduler_.schedule_many(std::move(tasks));
    state_.scheduled += count;
  }

  bool is_confirmed(const std::string& id) const {
    return state_.confirmed.count(id) != 0 || state_.confirmed_late.count(id) != 0;
  }

  // Delivery confirmations: each goes out 100 ms before its time-out is due and cancels it.
  // Each cancel() runs on its own, so a slow one does not delay the next.
  asio::awaitable<void> confirm_before_due(
      std::vector<std::pair<schedule::time_point, std::string>> confirmations) {
    corvo::task_group cancels(co_await asio::this_coro::executor);
    std::exception_ptr failed;
    try {
      for (auto& [due, id] : confirmations) {
        const auto at = due - 100ms;
        const auto wait = at - schedule::now();
        if (wait > 0us) {
          co_await corvo::sleep_for(std::chrono::duration_cast<std::chrono::milliseconds>(wait));
        }
        co_await cancels.spawn(confirm(due, std::move(id)));
      }
    } catch (...) {
      failed = std::current_exception();
    }
    if (failed) {  // cancelled (a stop): the cancels in flight are joined before the group goes
      co_await asio::this_coro::reset_cancellation_state();
      cancels.cancel();
      co_await join_quietly(cancels);
      std::rethrow_exception(failed);
    }
    co_await cancels.join();
    confirmations_done_ = true;
  }

  asio::awaitable<void> confirm(schedule::time_point due, std::string id) {
    if (!co_await scheduler_.cancel(id)) {
      co_return;  // gone already (it ran and was acknowledged)
    }
    ++state_.cancelled;
    const auto replied = schedule::now();
    if (replied < due - claim_window_) {
      state_.confirmed.insert(id);
    } else {
      state_.confirmed_late.emplace(
          id, std::chrono::duration_cast<std::chrono::microseconds>(replied - (due - 100ms)));
    }
    const auto it = state_.runs.find(id);
    if (it != state_.runs.end() && it->second > 0) {
      --state_.awaited_fired;  // it ran before its confirmation came back: not awaited
    }
  }

  void print_progress(bool tty) {
    std::ostringstream line;
    line << "scheduled " << state_.scheduled << "  confirmed " << state_.cancelled << "  fired "
         << state_.fired << "/" << settings_.tasks - state_.cancelled << "  p50 " << std::fixed
         << std::setprecision(2) << state_.lateness.quantile_ms(0.5) << " ms  p99 "
         << state_.lateness.quantile_ms(0.99) << " ms  in flight "
         << scheduler_.dispatch_stats().claimed - scheduler_.dispatch_stats().succeeded;
    if (tty) {
      std::cout << "\r" << line.str() << "\033[K" << std::flush;
    } else {
      std::cout << line.str() << "\n";
    }
  }

  asio::awaitable<int> report() {
    state_.lateness.print(std::cout);
    std::size_t twice = 0, missing = 0, cancelled_but_ran = 0, late_ran = 0;
    for (std::size_t i = 0; i < settings_.tasks; ++i) {
      const auto id = "notification-" + std::to_string(i);
      const auto it = state_.runs.find(id);
      const int runs = it == state_.runs.end() ? 0 : it->second;
      if (state_.confirmed.count(id)) {
        cancelled_but_ran += runs > 0;
      } else if (state_.confirmed_late.count(id)) {
        late_ran += runs == 1;
        twice += runs > 1;
      } else if (runs == 0) {
        ++missing;
      } else if (runs > 1) {
        ++twice;
      }
    }
    if (!state_.confirmed_late.empty()) {
      std::chrono::microseconds latest{0};
      for (const auto& [id, late] : state_.confirmed_late) {
        latest = std::max(latest, late);
      }
      std::cout << "\n"
                << state_.confirmed_late.size()
                << " confirmations came back too late to be sure of (after due - "
                << claim_window_.count() << " us; the latest went out "
                << std::chrono::duration_cast<std::chrono::milliseconds>(latest).count()
                << " ms after due - 100 ms: an overloaded machine); " << late_ran
                << " of their time-outs ran (once each)\n";
    }
    const auto early = state_.lateness.early();
    const auto left = co_await scheduler_.stats();
    const auto& d = scheduler_.dispatch_stats();
    std::cout << "\ndispatcher: " << d.claimed << " claimed in " << d.claims << " claims, "
              << d.succeeded << " published and acknowledged, " << d.retried << " retried, "
              << d.dead_lettered << " dead-lettered, " << d.wakes << " early wake-ups\n";
    std::cout << "left in Redis: " << left.scheduled << " scheduled, " << left.in_flight
              << " in flight, " << left.dead << " dead\n";
    const bool ok = missing == 0 && twice == 0 && cancelled_but_ran == 0 && early == 0;
    std::cout << (ok ? "OK" : "FAILED") << ": " << state_.fired << " time-outs fired, "
              << state_.cancelled << " cancelled by confirmations; missing " << missing
              << ", ran twice " << twice << ", ran although cancelled " << cancelled_but_ran
              << ", ran early " << early << "\n";
    co_return ok ? 0 : 1;
  }

  corvo::health::app& app_;
  settings settings_;
  redis::client redis_;
  schedule::scheduler scheduler_;
  progress state_;
  std::chrono::microseconds claim_window_;  // a cancel() after due - this may find it in flight
  bool confirmations_done_ = false;
  bool scenario_started_ = false;
  std::optional<int> verdict_;
};

}  // namespace notification_timeouts

int main(int argc, char** argv) {
  using namespace notification_timeouts;
  settings s;
  po::options_description options("notification_timeouts: send time-outs fired through Kafka");
  options.add_options()("help,h", "this help")("redis", po::value(&s.redis_url),
                                               "Redis URL (redis://host:port); required")(
      "kafka", po::value(&s.kafka)->default_value(s.kafka),
      "Kafka bootstrap servers, or embedded:N for the in-process cluster")(
      "tasks", po::value(&s.tasks)->default_value(s.tasks), "send time-outs to schedule")(
      "over", po::value(&s.over_seconds)->default_value(s.over_seconds),
      "seconds over which they fall due")("confirm",
                                          po::value(&s.confirm)->default_value(s.confirm),
                                          "share confirmed (cancelled) before due, 0..1")(
      "config", po::value(&s.config_file), "configuration file (JSON) instead of the built-in one")(
      "print-config", "print the built-in configuration and exit");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "notification_timeouts: " << e.what() << "\n" << options;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (vm.count("print-config")) {
    std::cout << default_config(s) << "\n";
    return 0;
  }
  if (s.redis_url.empty() && s.config_file.empty()) {
    std::cerr << "notification_timeouts: --redis URL is required (scripts/demo starts a "
                 "throwaway redis-server and passes it)\n";
    return 2;
  }
  if (s.tasks == 0 || s.over_seconds <= 0 || s.confirm < 0 || s.confirm > 1) {
    std::cerr << "notification_timeouts: need --tasks > 0, --over > 0 and 0 <= --confirm <= 1\n";
    return 2;
  }
  return corvo::samples::guarded_main("notification_timeouts", [&] {
    corvo::log::options log;
    log.min_severity = corvo::log::severity::warning;
    corvo::log::init(log);
    auto cfg = s.config_file.empty() ? corvo::config::from_string(default_config(s), "built-in")
                                     : corvo::config::from_file(s.config_file);
    cfg.apply_environment();
    corvo::health::app app(corvo::health::app_options::from(cfg));
    demo d(app, cfg, s);
    const auto result = app.run();
    return corvo::samples::exit_code("notification_timeouts", result, d.verdict(), true);
  });
}
