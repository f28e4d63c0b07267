// `corvo schedule add|get|list|cancel`, `corvo dead list|replay|purge`, `corvo stats`:
// administration of a Redis-backed scheduler namespace. Readable output by default, one
// JSON document with --json.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>
#include <charconv>
#include <corvo/core/config.hpp>
#include <corvo/core/log.hpp>
#include <corvo/redis/connection.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <cstdlib>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "cli.hpp"
#include "command.hpp"
#include "schedule_backup.hpp"
#include "schedule_events.hpp"
#include "store_target.hpp"
#include "time_text.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace po = boost::program_options;
namespace redis = corvo::redis;
using namespace corvo::schedule;

namespace {

using corvo::tool::help_requested;
using corvo::tool::parse_arguments;

using corvo::tool::iso8601;
using corvo::tool::parse_time;
using corvo::tool::store_flags;

constexpr const char* schedule_usage = R"(usage:
  corvo schedule add --id ID --type TYPE [--payload JSON] (--in DURATION | --at TIME)
                     [--max-attempts N] [--every DURATION | --cron "m h dom mon dow"]
                     [--priority low|normal|high] [--timeout DURATION]
                     [--retry-initial DURATION] [--retry-max DURATION]
                     [--retry-multiplier X] [--retry-jitter X]
                     [--if-absent | [--dedup-key KEY] --dedup-window DURATION [--dedup-drop]]
  corvo schedule get ID
  corvo schedule list [--offset N] [--limit N]
  corvo schedule cancel ID
  corvo schedule pause [--type TYPE]     (the whole namespace, or one task type)
  corvo schedule resume [--type TYPE]
  corvo schedule paused
  corvo schedule limits --config APP.json   (rate and concurrency limits per type, and their state)
  corvo schedule events [--follow] [--task ID] [--type TYPE] [--kind KIND]... [--from start|now|POS]
                        (task events: scheduler.events.enabled; --json: one object per line)
  corvo schedule export [--page N] [--quiet] > tasks.jsonl   (every task, dead ones included)
  corvo schedule import tasks.jsonl [--keep-going] [--window N] [--quiet]   (an upsert)
  corvo schedule compact   (moves the tasks waiting in the due sets due later than
                            scheduler.redis.compact_after into the compact tier)
  corvo dead list [--offset N] [--limit N]
  corvo dead replay ID
  corvo dead purge [ID]
  corvo stats
common options: --config APP.json (the application's configuration: Redis, namespace, shards)
                --redis URL | --cluster URL... --namespace NS --shards N
                --connect-timeout DURATION (default 3s) --json
  (corvo schedule add --help etc. list every option)
DURATION: 250ms, 30s, 5m, 1h; TIME: 2026-11-22T10:00:00Z, 2026-11-22T12:00:00+02:00
      (a UTC offset or Z is required) or microseconds since the epoch
)";

std::chrono::milliseconds parse_duration(const std::string& option, const std::string& text) {
  corvo::config c;
  c.set(option, json::string(text), "--" + option);
  return c.get<std::chrono::milliseconds>(option);
}

json::object to_json(const task& t) {
  json::object o;
  o["id"] = t.id;
  o["type"] = t.type;
  o["state"] = std::string(to_string(t.state));
  if (t.due.time_since_epoch().count() != 0) {
    o["due"] = iso8601(t.due);
  }
  o["attempts"] = t.attempts;
  o["max_attempts"] = t.max_attempts;
  if (t.priority != priority::normal) {
    o["priority"] = std::string(to_string(t.priority));
  }
  if (t.timeout) {
    o["timeout_ms"] = t.timeout->count();
  }
  if (t.retry) {
    json::object r;
    r["initial_ms"] = t.retry->initial.count();
    r["max_ms"] = t.retry->max.count();
    r["multiplier"] = t.retry->multiplier;
    r["jitter"] = t.retry->jitter;
    o["retry"] = std::move(r);
  }
  if (const auto r = describe(t.repeat); !r.empty()) {
    o["recurrence"] = r;
  }
  if (!t.last_error.empty()) {
    o["last_error"] = t.last_error;
  }
  o["payload"] = t.payload;
  return o;
}

void print_task(const task& t) {
  std::cout << t.id << "  " << t.type << "  " << to_string(t.state);
  if (t.due.time_since_epoch().count() != 0) {
    std::cout << "  due " << iso8601(t.due);
  }
  std::cout << "  attempts " << t.attempts << "/" << t.max_attempts;
  if (t.priority != priority::normal) {
    std::cout << "  priority " << to_string(t.priority);
  }
  if (const auto r = describe(t.repeat); !r.empty()) {
    std::cout << "  " << r;
  }
  if (!t.last_error.empty()) {
    std::cout << "  error: " << t.last_error;
  }
  std::cout << "  " << json::serialize(t.payload) << "\n";
}

void print_tasks(const std::vector<task>& tasks, bool as_json) {
  if (as_json) {
    json::array a;
    for (const auto& t : tasks)
      a.push_back(to_json(t));
    std::cout << json::serialize(a) << "\n";
    return;
  }
  for (const auto& t : tasks)
    print_task(t);
  if (tasks.empty())
    std::cout << "(none)\n";
}

using store_operation = std::function<asio::awaitable<int>(redis_store&)>;

asio::awaitable<int> run_on_store(redis::client& conn, corvo::tool::store_target target,
                                  store_operation op) {
  auto options = co_await corvo::tool::store_options(conn, target);
  redis_store s(conn, target.redis, std::move(options));
  co_return co_await op(s);
}

// Connects (giving up after --connect-timeout), runs `op` against the namespace's store,
// and returns its exit code.
int with_store(const store_flags& flags, store_operation op) {
  const auto target = corvo::tool::resolve_target(flags);
  return corvo::tool::run_with_client(target, [target, op = std::move(op)](redis::client& conn) {
    return run_on_store(conn, target, op);
  });
}

std::vector<std::string> rest(const std::vector<std::string>& args) {
  return {args.begin() + 1, args.end()};
}

// How `corvo schedule add` schedules: plain (upsert), --if-absent, or with a --dedup-window
// (on the id, or on a --dedup-key given apart: add_task's `dedup_key`, not a member here, as
// a string in a struct passed to a coroutine trips GCC 12).
struct add_mode {
  bool if_absent = false;
  std::optional<dedup_options> dedup;
};

asio::awaitable<int> add_task(redis_store& s, task t, add_mode mode, std::string dedup_key,
                              bool as_json) {
  const std::string id = t.id;
  std::string outcome = "scheduled";
  std::string replaced;  // --dedup-key: the pending task's id a replace took the place of
  if (mode.dedup && !dedup_key.empty()) {
    auto result = co_await s.schedule_deduplicated_by_key(std::move(t), dedup_key, *mode.dedup);
    outcome = std::string(to_string(result.outcome));
    replaced = std::move(result.replaced_id);
  } else if (mode.dedup) {
    outcome = std::string(to_string(co_await s.schedule_deduplicated(std::move(t), *mode.dedup)));
  } else if (mode.if_absent) {
    const bool added = co_await s.schedule_if_absent(std::move(t));
    outcome = added ? "scheduled" : "kept";  // kept: --if-absent found the id
  } else {
    co_await s.schedule(std::move(t));
  }
  if (as_json) {
    json::object out{{outcome, id}};
    if (!dedup_key.empty() && outcome == "replaced") {
      out["pending"] = replaced;
    }
    std::cout << json::serialize(out) << "\n";
  } else if (!dedup_key.empty()) {
    const std::string why =
        outcome == "dropped"    ? " (the window of key '" + dedup_key + "' is open)"
        : outcome == "replaced" ? " (in place of " + replaced + ", which will not run)"
                                : "";
    std::cout << outcome << " " << id << why << "\n";
  } else {
    const char* why = outcome == "kept"      ? " (a task with this id exists)"
                      : outcome == "dropped" ? " (its deduplication window is open)"
                      : outcome == "replaced"
                          ? " (the waiting task took the new payload and due time)"
                          : "";
    std::cout << outcome << " " << id << why << "\n";
  }
  co_return 0;
}

int schedule_add(const std::vector<std::string>& args) {
  store_flags c;
  std::string id, type, payload = "{}", at, in, every, cron_text, zone, priority_text = "normal";
  unsigned max_attempts = 0;
  std::string timeout, retry_initial, retry_max;
  std::optional<double> retry_multiplier, retry_jitter;
  bool if_absent = false, dedup_drop = false;
  std::string dedup_window, dedup_key;
  po::options_description options("options");
  corvo::tool::add_store_flags(options, c);
  options.add_options()("id", po::value(&id)->required(), "task id")(
      "type", po::value(&type)->required(), "task type")(
      "payload", po::value(&payload), "JSON payload")("at", po::value(&at), "due time")(
      "in", po::value(&in), "due after this duration")(
      "max-attempts", po::value(&max_attempts),
      "tries before dead-lettering (default: the type's scheduler.types entry in --config, "
      "else 5)")("timeout", po::value(&timeout),
                 "longest run (default: the type's, else "
                 "scheduler.run_timeout)")(
      "retry-initial", po::value(&retry_initial),
      "the task's own retry backoff: first ceiling (default 1s)")(
      "retry-max", po::value(&retry_max), "the task's own retry backoff: cap (default 5m)")(
      "retry-multiplier", po::value<double>()->notifier([&](double v) { retry_multiplier = v; }),
      "the task's own retry backoff: growth per retry (default 2)")(
      "retry-jitter", po::value<double>()->notifier([&](double v) { retry_jitter = v; }),
      "the task's own retry backoff: jitter in [0, 1] (default 1: full)")(
      "every", po::value(&every), "repeat at this interval")(
      "cron", po::value(&cron_text), "repeat on this 5-field cron expression")(
      "tz", po::value(&zone), "time zone of --cron (IANA name, e.g. Europe/Berlin; default UTC)")(
      "priority", po::value(&priority_text)->default_value("normal"),
      "low, normal or high: the claim order among due tasks (docs/scheduler.md, Priorities)")(
      "if-absent", po::bool_switch(&if_absent),
      "keep an existing task with this id instead of replacing it")(
      "dedup-window", po::value(&dedup_window),
      "deduplicate schedules of this id within this duration: a waiting task takes the new "
      "payload and due time (debounce)")(
      "dedup-key", po::value(&dedup_key),
      "with --dedup-window: deduplicate on this key instead of the id (schedules of other ids "
      "with this key within the window replace the pending task, or are dropped)")(
      "dedup-drop", po::bool_switch(&dedup_drop),
      "with --dedup-window: drop a schedule within the window instead");
  if (help_requested(args,
                     "corvo schedule add --id ID --type TYPE [--payload JSON] "
                     "(--in DURATION | --at TIME) [--every DURATION | --cron EXPR [--tz ZONE]] "
                     "[--priority low|normal|high] "
                     "[--if-absent | [--dedup-key KEY] --dedup-window DURATION [--dedup-drop]]",
                     options)) {
    return 0;
  }
  const auto given = parse_arguments(args, options);
  const bool key_given = given.count("dedup-key") > 0;
  if (at.empty() == in.empty()) {
    throw std::invalid_argument("give exactly one of --at and --in");
  }
  task t;
  t.id = id;
  t.type = type;
  t.max_attempts = max_attempts;
  t.priority = parse_priority(priority_text);
  if (!timeout.empty()) {
    t.timeout = parse_duration("timeout", timeout);
  }
  if (!retry_initial.empty() || !retry_max.empty() || retry_multiplier || retry_jitter) {
    retry_backoff b;
    if (!retry_initial.empty())
      b.initial = parse_duration("retry-initial", retry_initial);
    if (!retry_max.empty())
      b.max = parse_duration("retry-max", retry_max);
    if (retry_multiplier)
      b.multiplier = *retry_multiplier;
    if (retry_jitter)
      b.jitter = *retry_jitter;
    validate(b, "--retry-*");
    t.retry = b;
  }
  if (t.max_attempts == 0 && !c.config_file.empty()) {
    // As the application's scheduler would: the type's policy from its configuration.
    const auto app = scheduler_options::from(corvo::config::from_file(c.config_file));
    const auto policy = app.dispatch.types.find(t.type);
    if (policy != app.dispatch.types.end() && policy->second.max_attempts) {
      t.max_attempts = *policy->second.max_attempts;
    }
  }
  boost::system::error_code ec;
  t.payload = json::parse(payload, ec);
  if (ec) {
    throw std::invalid_argument("--payload is not JSON: " + ec.message());
  }
  t.due = at.empty() ? now() + parse_duration("in", in) : parse_time(at);
  if (!every.empty() && !cron_text.empty()) {
    throw std::invalid_argument("give at most one of --every and --cron");
  }
  if (!zone.empty() && cron_text.empty()) {
    throw std::invalid_argument("--tz applies to --cron only");
  }
  if (!every.empty()) {
    t.repeat = interval{parse_duration("every", every)};
  } else if (!cron_text.empty()) {
    t.repeat = parse_recurrence("cron " + (zone.empty() ? "" : "TZ=" + zone + " ") + cron_text);
    next_occurrence(t.repeat, t.due);  // validates the expression now
  }
  add_mode mode;
  mode.if_absent = if_absent;
  if (!dedup_window.empty()) {
    if (if_absent) {
      throw std::invalid_argument("give at most one of --if-absent and --dedup-window");
    }
    dedup_options dedup;
    dedup.window = parse_duration("dedup-window", dedup_window);
    dedup.mode = dedup_drop ? dedup_mode::drop : dedup_mode::replace;
    mode.dedup = dedup;
  } else if (dedup_drop) {
    throw std::invalid_argument("--dedup-drop needs --dedup-window");
  }
  if (key_given && dedup_window.empty()) {
    throw std::invalid_argument("--dedup-key needs --dedup-window");
  }
  if (key_given && dedup_key.empty()) {
    throw std::invalid_argument("--dedup-key is empty");
  }
  return with_store(c, [t, mode, dedup_key, &c](redis_store& s) {
    return add_task(s, t, mode, dedup_key, c.json_output);
  });
}

asio::awaitable<int> get_task(redis_store& s, std::string id, bool as_json) {
  const auto t = co_await s.get(id);
  if (!t) {
    std::cerr << "corvo schedule get: no task '" << id << "'\n";
    co_return 1;
  }
  if (as_json) {
    std::cout << json::serialize(to_json(*t)) << "\n";
  } else {
    print_task(*t);
  }
  co_return 0;
}

asio::awaitable<int> cancel_task(redis_store& s, std::string id, bool as_json) {
  const bool found = co_await s.cancel(id);
  if (as_json) {
    std::cout << json::serialize(json::object{{"cancelled", found}, {"id", id}}) << "\n";
  } else {
    std::cout << (found ? "cancelled " : "no task ") << id << "\n";
  }
  co_return found ? 0 : 1;
}

asio::awaitable<int> list_tasks(redis_store& s, std::size_t offset, std::size_t limit, bool dead,
                                bool as_json) {
  // (if/else, not `?:` with two co_awaits: GCC 12 destroys that temporary twice.)
  std::vector<task> tasks;
  if (dead) {
    tasks = co_await s.dead_letters(offset, limit);
  } else {
    tasks = co_await s.browse(offset, limit);
  }
  print_tasks(tasks, as_json);
  co_return 0;
}

asio::awaitable<int> replay_task(redis_store& s, std::string id, bool as_json) {
  const bool replayed = co_await s.replay(id);
  if (as_json) {
    std::cout << json::serialize(json::object{{"replayed", replayed}, {"id", id}}) << "\n";
  } else {
    std::cout << (replayed ? "replayed " : "no dead task ") << id << "\n";
  }
  co_return replayed ? 0 : 1;
}

asio::awaitable<int> purge_tasks(redis_store& s, std::string id, bool as_json) {
  const auto removed = co_await s.purge(id);
  if (as_json) {
    std::cout << json::serialize(json::object{{"purged", removed}}) << "\n";
  } else {
    std::cout << "purged " << removed << " dead task(s)\n";
  }
  co_return 0;
}

asio::awaitable<int> show_stats(redis_store& s, bool as_json) {
  const auto st = co_await s.stats();
  if (as_json) {
    std::cout << json::serialize(json::object{{"scheduled", st.scheduled},
                                              {"due_now", st.due_now},
                                              {"in_flight", st.in_flight},
                                              {"dead", st.dead},
                                              {"held", st.held}})
              << "\n";
  } else {
    std::cout << "scheduled " << st.scheduled << "  due now " << st.due_now << "  in flight "
              << st.in_flight << "  dead " << st.dead << "  held by limits " << st.held << "\n";
  }
  co_return 0;
}

asio::awaitable<int> compact_tasks(redis_store& s, bool as_json) {
  const auto moved = co_await s.compact_waiting();
  if (as_json) {
    std::cout << json::serialize(json::object{{"moved", moved}}) << "\n";
  } else {
    std::cout << "moved " << moved << " waiting task(s) into the compact tier (due later than "
              << s.options().compact_after.count() << " ms from now)\n";
  }
  co_return 0;
}

// `corvo schedule compact`: redis_store::compact_waiting (the compact tier's compact_after
// from --config's scheduler.redis.compact_after, else the default).
int compact_command(const std::vector<std::string>& args) {
  store_flags c;
  po::options_description options("options");
  corvo::tool::add_store_flags(options, c);
  if (help_requested(args, "corvo schedule compact", options)) {
    return 0;
  }
  parse_arguments(args, options);
  return with_store(c, [&c](redis_store& s) { return compact_tasks(s, c.json_output); });
}

// `corvo schedule get|cancel ID`, `corvo dead replay|purge [ID]`.
int with_id(const std::vector<std::string>& args, const std::string& usage, bool id_required,
            asio::awaitable<int> (*op)(redis_store&, std::string, bool)) {
  store_flags c;
  std::string id;
  po::options_description options("options");
  corvo::tool::add_store_flags(options, c);
  options.add_options()("task-id", po::value(&id), "task id (or the first word)");
  po::positional_options_description positional;
  positional.add("task-id", 1);
  if (help_requested(args, usage, options)) {
    return 0;
  }
  parse_arguments(args, options, &positional);
  if (id_required && id.empty()) {
    throw std::invalid_argument("missing task id");
  }
  return with_store(c, [op, id, &c](redis_store& s) { return op(s, id, c.json_output); });
}

int listing(const std::vector<std::string>& args, bool dead) {
  store_flags c;
  std::size_t offset = 0, limit = 50;
  po::options_description options("options");
  corvo::tool::add_store_flags(options, c);
  options.add_options()("offset", po::value(&offset)->default_value(0), "skip this many")(
      "limit", po::value(&limit)->default_value(50), "show at most this many");
  if (help_requested(args,
                     dead ? "corvo dead list [--offset N] [--limit N]"
                          : "corvo schedule list [--offset N] [--limit N]",
                     options)) {
    return 0;
  }
  parse_arguments(args, options);
  return with_store(c, [offset, limit, dead, &c](redis_store& s) {
    return list_tasks(s, offset, limit, dead, c.json_output);
  });
}

asio::awaitable<int> pause_or_resume(redis_store& s, std::string type, bool pause, bool as_json) {
  if (pause) {
    co_await s.pause(type);
  } else {
    co_await s.resume(type);
  }
  const char* verb = pause ? "paused" : "resumed";
  const std::string what = type.empty() ? "namespace" : "type " + type;
  if (as_json) {
    std::cout << json::serialize(json::object{{verb, type.empty() ? "*" : type}}) << "\n";
  } else {
    std::cout << verb << " " << what << "\n";
  }
  co_return 0;
}

// `corvo schedule pause|resume [--type TYPE]`.
int pausing(const std::vector<std::string>& args, bool pause) {
  store_flags c;
  std::string type;
  po::options_description options("options");
  corvo::tool::add_store_flags(options, c);
  options.add_options()("type", po::value(&type),
                        "only this task type (default: the whole namespace)");
  if (help_requested(
          args,
          pause ? "corvo schedule pause [--type TYPE]" : "corvo schedule resume [--type TYPE]",
          options)) {
    return 0;
  }
  parse_arguments(args, options);
  return with_store(c, [type, pause, &c](redis_store& s) {
    return pause_or_resume(s, type, pause, c.json_output);
  });
}

asio::awaitable<int> show_paused(redis_store& s, bool as_json) {
  const auto state = co_await s.paused();
  if (as_json) {
    json::array types;
    for (const auto& t : state.types) {
      types.emplace_back(t);
    }
    std::cout << json::serialize(json::object{{"namespace", state.all}, {"types", types}}) << "\n";
  } else {
    std::cout << "namespace " << (state.all ? "paused" : "running");
    for (const auto& t : state.types) {
      std::cout << "\ntype " << t << " paused";
    }
    std::cout << "\n";
  }
  co_return 0;
}

int show_paused_command(const std::vector<std::string>& args) {
  store_flags c;
  po::options_description options("options");
  corvo::tool::add_store_flags(options, c);
  if (help_requested(args, "corvo schedule paused", options)) {
    return 0;
  }
  parse_arguments(args, options);
  return with_store(c, [&c](redis_store& s) { return show_paused(s, c.json_output); });
}

asio::awaitable<int> show_limits(redis_store& s, type_limits limits, bool as_json) {
  s.set_limits(std::move(limits));
  const auto states = co_await s.limit_states();
  json::array out;
  for (const auto& st : states) {
    json::object o;
    o["type"] = st.type;
    if (st.limit.concurrency) {
      o["concurrency"] = *st.limit.concurrency;
    }
    if (st.limit.rate) {
      o["rate"] = to_string(*st.limit.rate);
    }
    o["running"] = st.running;
    o["recent_starts"] = st.recent_starts;
    o["held"] = st.held;
    if (!as_json) {
      std::cout << st.type;
      if (st.limit.concurrency) {
        std::cout << "  running " << st.running << " of " << *st.limit.concurrency;
      }
      if (st.limit.rate) {
        std::cout << "  started " << st.recent_starts << " of " << to_string(*st.limit.rate);
      }
      std::cout << "  held " << st.held << "\n";
    }
    out.push_back(std::move(o));
  }
  if (as_json) {
    std::cout << json::serialize(out) << "\n";
  } else if (states.empty()) {
    std::cout << "no limits configured (scheduler.types.<type>.rate / concurrency)\n";
  }
  co_return 0;
}

// `corvo schedule limits`: the limits come from the application's configuration.
int limits_command(const std::vector<std::string>& args) {
  store_flags c;
  po::options_description options("options");
  corvo::tool::add_store_flags(options, c);
  if (help_requested(args, "corvo schedule limits --config APP.json", options)) {
    return 0;
  }
  parse_arguments(args, options);
  if (c.config_file.empty()) {
    throw std::invalid_argument(
        "corvo schedule limits needs --config (the limits are scheduler.types.<type>.rate / "
        "concurrency in the application's configuration)");
  }
  const auto app = scheduler_options::from(corvo::config::from_file(c.config_file));
  auto limits = limits_of(app.dispatch.types);
  return with_store(c,
                    [limits, &c](redis_store& s) { return show_limits(s, limits, c.json_output); });
}

bool wants_help(const std::vector<std::string>& args) {
  return args.empty() || args[0] == "--help" || args[0] == "-h";
}

int run_schedule(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    (args.empty() ? std::cerr : std::cout) << schedule_usage;
    return args.empty() ? 2 : 0;
  }
  const auto& verb = args[0];
  if (verb == "add")
    return schedule_add(rest(args));
  if (verb == "get")
    return with_id(rest(args), "corvo schedule get ID", true, &get_task);
  if (verb == "list")
    return listing(rest(args), false);
  if (verb == "cancel")
    return with_id(rest(args), "corvo schedule cancel ID", true, &cancel_task);
  if (verb == "pause" || verb == "resume")
    return pausing(rest(args), verb == "pause");
  if (verb == "paused")
    return show_paused_command(rest(args));
  if (verb == "limits")
    return limits_command(rest(args));
  if (verb == "compact")
    return compact_command(rest(args));
  if (verb == "events")
    return corvo::tool::schedule_events(rest(args));
  if (verb == "export")
    return corvo::tool::schedule_export(rest(args));
  if (verb == "import")
    return corvo::tool::schedule_import(rest(args));
  std::cerr << "corvo schedule: unknown subcommand '" << verb << "'\n\n" << schedule_usage;
  return 2;
}

int run_dead(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    (args.empty() ? std::cerr : std::cout) << schedule_usage;
    return args.empty() ? 2 : 0;
  }
  const auto& verb = args[0];
  if (verb == "list")
    return listing(rest(args), true);
  if (verb == "replay")
    return with_id(rest(args), "corvo dead replay ID", true, &replay_task);
  if (verb == "purge")
    return with_id(rest(args), "corvo dead purge [ID]", false, &purge_tasks);
  std::cerr << "corvo dead: unknown subcommand '" << verb << "'\n\n" << schedule_usage;
  return 2;
}

int run_stats(const std::vector<std::string>& args) {
  store_flags c;
  po::options_description options("options");
  corvo::tool::add_store_flags(options, c);
  if (help_requested(args, "corvo stats", options)) {
    return 0;
  }
  parse_arguments(args, options);
  return with_store(c, [&c](redis_store& s) { return show_stats(s, c.json_output); });
}

const corvo::tool::registration schedule_command{
    {"schedule", "add, get, list, cancel, pause, resume, export and import delayed tasks in Redis",
     run_schedule}};
const corvo::tool::registration dead_command{
    {"dead", "list, replay and purge dead-lettered tasks", run_dead}};
const corvo::tool::registration stats_command{
    {"stats", "counts of scheduled, due, in-flight and dead tasks", run_stats}};

}  // namespace
