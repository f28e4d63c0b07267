// `corvo schedule export|import` (schedule_backup.hpp).
#include "schedule_backup.hpp"

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/trace.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <fstream>
#include <iostream>
#include <limits>
#include <stdexcept>

#include "cli.hpp"
#include "store_target.hpp"
#include "time_text.hpp"

namespace corvo::tool {

namespace asio = boost::asio;
namespace json = boost::json;
namespace po = boost::program_options;
using schedule::redis_store;
using schedule::task;
using schedule::task_state;
using schedule::time_point;

namespace {

// Lines between two progress lines (stderr) of an export or an import.
constexpr std::size_t progress_every = 10'000;

std::uint64_t unsigned_field(const json::value& v, std::string_view key, std::uint64_t max) {
  std::uint64_t n = 0;
  if (v.is_uint64()) {
    n = v.as_uint64();
  } else if (v.is_int64() && v.as_int64() >= 0) {
    n = static_cast<std::uint64_t>(v.as_int64());
  } else {
    throw std::invalid_argument("\"" + std::string(key) + "\" is not a non-negative integer");
  }
  if (n > max) {
    throw std::invalid_argument("\"" + std::string(key) + "\" is too large");
  }
  return n;
}

std::string text_of(const json::value& v, std::string_view key) {
  if (!v.is_string()) {
    throw std::invalid_argument("\"" + std::string(key) + "\" is not a string");
  }
  return std::string(v.as_string());
}

time_point time_of(const json::value& v, std::string_view key) {
  return parse_time(text_of(v, key), "\"" + std::string(key) + "\"");
}

task_state state_of(const std::string& text) {
  for (auto s : {task_state::scheduled, task_state::in_flight, task_state::dead}) {
    if (text == schedule::to_string(s)) {
      return s;
    }
  }
  throw std::invalid_argument("\"state\" '" + text + "' is not scheduled, in_flight or dead");
}

double number_of(const json::value& v, std::string_view key) {
  if (!v.is_number()) {
    throw std::invalid_argument("\"" + std::string(key) + "\" is not a number");
  }
  return v.to_number<double>();
}

// {"initial_ms": 1000, "max_ms": 300000, "multiplier": 2, "jitter": 1}: all four, nothing else.
schedule::retry_backoff retry_of(const json::value& v) {
  if (!v.is_object()) {
    throw std::invalid_argument("\"retry\" is not an object");
  }
  schedule::retry_backoff b;
  unsigned seen = 0;
  constexpr auto ms_max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  for (const auto& [key, field] : v.as_object()) {
    if (key == "initial_ms") {
      b.initial = std::chrono::milliseconds(
          static_cast<std::int64_t>(unsigned_field(field, "retry.initial_ms", ms_max)));
    } else if (key == "max_ms") {
      b.max = std::chrono::milliseconds(
          static_cast<std::int64_t>(unsigned_field(field, "retry.max_ms", ms_max)));
    } else if (key == "multiplier") {
      b.multiplier = number_of(field, "retry.multiplier");
    } else if (key == "jitter") {
      b.jitter = number_of(field, "retry.jitter");
    } else {
      throw std::invalid_argument("unknown key \"retry." + std::string(key) + "\"");
    }
    ++seen;
  }
  if (seen != 4) {
    throw std::invalid_argument("\"retry\" needs initial_ms, max_ms, multiplier and jitter");
  }
  schedule::validate(b, "\"retry\"");
  return b;
}

}  // namespace

json::object export_line(const task& t) {
  json::object o;
  o["id"] = t.id;
  o["type"] = t.type;
  o["state"] = std::string(schedule::to_string(t.state));
  if (t.state == task_state::scheduled) {
    o["due"] = iso8601(t.due);
  }
  o["occurrence"] = iso8601(t.occurrence);
  o["attempts"] = t.attempts;
  o["max_attempts"] = t.max_attempts;
  if (t.priority != schedule::priority::normal) {
    o["priority"] = std::string(schedule::to_string(t.priority));
  }
  if (t.timeout) {
    o["timeout_ms"] = t.timeout->count();
  }
  if (t.retry) {
    o["retry"] = json::object{{"initial_ms", t.retry->initial.count()},
                              {"max_ms", t.retry->max.count()},
                              {"multiplier", t.retry->multiplier},
                              {"jitter", t.retry->jitter}};
  }
  if (const auto r = schedule::describe(t.repeat); !r.empty()) {
    o["recurrence"] = r;
  }
  if (!t.last_error.empty()) {
    o["last_error"] = t.last_error;
  }
  if (!t.traceparent.empty()) {
    o["traceparent"] = t.traceparent;
  }
  o["payload"] = t.payload;
  return o;
}

task import_line(std::string_view line) {
  boost::system::error_code ec;
  auto doc = json::parse(line, ec);
  if (ec) {
    throw std::invalid_argument("not JSON: " + ec.message());
  }
  if (!doc.is_object()) {
    throw std::invalid_argument("not a JSON object");
  }
  const auto& o = doc.as_object();
  task t;
  t.max_attempts = schedule::default_max_attempts;  // when the line has none
  bool has_id = false, has_type = false, has_due = false, has_occurrence = false;
  t.state = task_state::scheduled;
  for (const auto& [key, v] : o) {
    if (key == "id") {
      t.id = text_of(v, key);
      has_id = true;
    } else if (key == "type") {
      t.type = text_of(v, key);
      has_type = true;
    } else if (key == "state") {
      t.state = state_of(text_of(v, key));
    } else if (key == "due") {
      t.due = time_of(v, key);
      has_due = true;
    } else if (key == "occurrence") {
      t.occurrence = time_of(v, key);
      has_occurrence = true;
    } else if (key == "attempts") {
      t.attempts = static_cast<std::uint32_t>(
          unsigned_field(v, key, std::numeric_limits<std::uint32_t>::max()));
    } else if (key == "max_attempts") {
      t.max_attempts = static_cast<std::uint32_t>(
          unsigned_field(v, key, std::numeric_limits<std::uint32_t>::max()));
    } else if (key == "priority") {
      t.priority = schedule::parse_priority(text_of(v, key));
    } else if (key == "timeout_ms") {
      t.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(
          unsigned_field(v, key, std::numeric_limits<std::int64_t>::max())));
    } else if (key == "retry") {
      t.retry = retry_of(v);
    } else if (key == "recurrence") {
      t.repeat = schedule::parse_recurrence(text_of(v, key));
    } else if (key == "last_error") {
      t.last_error = text_of(v, key);
    } else if (key == "traceparent") {
      t.traceparent = text_of(v, key);
      corvo::trace::check_traceparent(t.traceparent, "\"traceparent\"");
    } else if (key == "payload") {
      t.payload = v;
    } else {
      throw std::invalid_argument("unknown key \"" + std::string(key) + "\"");
    }
  }
  if (!has_id || t.id.empty()) {
    throw std::invalid_argument("no \"id\"");
  }
  if (!has_type || t.type.empty()) {
    throw std::invalid_argument("no \"type\"");
  }
  if (t.type.find('\n') != std::string::npos) {
    throw std::invalid_argument("\"type\" contains a newline");
  }
  if (t.max_attempts == 0) {
    throw std::invalid_argument("\"max_attempts\" must be at least 1");
  }
  if (t.state == task_state::scheduled && !has_due) {
    throw std::invalid_argument("a scheduled task needs \"due\"");
  }
  if (t.state != task_state::scheduled && has_due) {
    t.due = time_point{};  // only a waiting task has a due time
  }
  if (!has_occurrence) {
    t.occurrence = t.due;
  }
  // A cron expression is checked by computing an occurrence (as `schedule add --cron`).
  schedule::next_occurrence(t.repeat, t.occurrence);
  return t;
}

namespace {

using store_operation = std::function<asio::awaitable<int>(redis_store&)>;

asio::awaitable<int> run_on_store(redis::client& conn, store_target target, store_operation op) {
  auto options = co_await store_options(conn, target);
  redis_store s(conn, target.redis, std::move(options));
  co_return co_await op(s);
}

int with_store(const store_flags& flags, store_operation op) {
  const auto target = resolve_target(flags);
  return run_with_client(target, [target, op = std::move(op)](redis::client& conn) {
    return run_on_store(conn, target, op);
  });
}

// ---- export ---------------------------------------------------------------------------------

asio::awaitable<int> export_tasks(redis_store& s, std::size_t page, bool quiet) {
  std::size_t written = 0;
  for (auto state : {task_state::scheduled, task_state::in_flight, task_state::dead}) {
    for (std::size_t offset = 0;; offset += page) {
      std::vector<task> tasks;
      if (state == task_state::scheduled) {
        tasks = co_await s.browse(offset, page);
      } else if (state == task_state::in_flight) {
        tasks = co_await s.in_flight(offset, page);
      } else {
        tasks = co_await s.dead_letters(offset, page);
      }
      for (const auto& t : tasks) {
        std::cout << json::serialize(export_line(t)) << '\n';
        if (++written % progress_every == 0 && !quiet) {
          std::cerr << "corvo schedule export: " << written << " tasks\n";
        }
      }
      if (tasks.size() < page) {
        break;
      }
    }
  }
  std::cout.flush();
  if (!std::cout) {
    throw std::runtime_error("writing to stdout failed");
  }
  if (!quiet) {
    std::cerr << "corvo schedule export: " << written << " tasks exported\n";
  }
  co_return 0;
}

// ---- import ---------------------------------------------------------------------------------

struct import_state {
  std::string file;
  bool keep_going = false;
  bool quiet = false;
  std::size_t imported = 0;
  std::size_t failed = 0;
  bool stop = false;  // stop reading (a failure without --keep-going)
};

void report(import_state& st, std::size_t line, const std::string& why) {
  std::cerr << st.file << ":" << line << ": " << why << "\n";
  ++st.failed;
  if (!st.keep_going) {
    st.stop = true;
  }
}

asio::awaitable<void> restore_one(redis_store& s, task t, std::size_t line, import_state& st) {
  try {
    co_await s.restore(std::move(t));
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted) {
      throw;
    }
    report(st, line, e.what());
    co_return;
  } catch (const std::exception& e) {
    report(st, line, e.what());
    co_return;
  }
  if (++st.imported % progress_every == 0 && !st.quiet) {
    std::cerr << "corvo schedule import: " << st.imported << " tasks\n";
  }
}

asio::awaitable<int> import_tasks(redis_store& s, std::string path, std::size_t window,
                                  import_state st) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error("cannot open '" + path + "'");
  }
  co_await s.open();  // the shard count is known before the first line is read
  auto ex = co_await asio::this_coro::executor;
  task_group_options options;
  options.max_in_flight = window;
  task_group group(ex, options);
  std::string text;
  std::size_t line = 0;
  std::size_t stopped_at = 0;
  while (!st.stop && std::getline(in, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) {
      continue;  // blank lines are allowed
    }
    task t;
    try {
      t = import_line(text);
    } catch (const std::exception& e) {
      report(st, line, e.what());
      stopped_at = st.stop ? line : 0;
      continue;
    }
    co_await group.spawn(restore_one(s, std::move(t), line, st));
  }
  co_await group.join();
  if (!st.quiet || st.failed > 0) {
    std::cerr << "corvo schedule import: " << st.imported << " tasks imported from " << path;
    if (st.failed > 0) {
      std::cerr << ", " << st.failed << " line(s) refused";
    }
    std::cerr << "\n";
  }
  if (stopped_at > 0) {
    std::cerr << "corvo schedule import: stopped at line " << stopped_at
              << "; the lines after it were not read. Fix it and import again (an upsert: "
                 "the lines already imported are written again unchanged), or pass "
                 "--keep-going\n";
  } else if (st.stop) {
    std::cerr << "corvo schedule import: stopped after a failed line; the lines after it were "
                 "not read. Import again (an upsert), or pass --keep-going\n";
  }
  co_return st.failed == 0 ? 0 : 1;
}

}  // namespace

int schedule_export(const std::vector<std::string>& args) {
  store_flags c;
  std::size_t page = 50'000;
  bool quiet = false;
  po::options_description options("options");
  add_store_flags(options, c);
  options.add_options()("page", po::value(&page)->default_value(50'000),
                        "tasks read per listing call")("quiet", po::bool_switch(&quiet),
                                                       "no progress lines on stderr");
  if (help_requested(args, "corvo schedule export [--page N] [--quiet] > tasks.jsonl", options)) {
    return 0;
  }
  parse_arguments(args, options);
  if (page == 0) {
    throw std::invalid_argument("--page must be at least 1");
  }
  return with_store(c, [page, quiet](redis_store& s) { return export_tasks(s, page, quiet); });
}

int schedule_import(const std::vector<std::string>& args) {
  store_flags c;
  std::string file;
  std::size_t window = 512;
  import_state st;
  po::options_description options("options");
  add_store_flags(options, c);
  options.add_options()("file", po::value(&file), "the JSON-lines file (or the first word)")(
      "keep-going", po::bool_switch(&st.keep_going),
      "report a bad line and go on with the next (default: stop at the first)")(
      "window", po::value(&window)->default_value(512), "writes in flight at once")(
      "quiet", po::bool_switch(&st.quiet), "no progress lines on stderr");
  po::positional_options_description positional;
  positional.add("file", 1);
  if (help_requested(args, "corvo schedule import FILE [--keep-going] [--window N] [--quiet]",
                     options)) {
    return 0;
  }
  parse_arguments(args, options, &positional);
  if (file.empty()) {
    throw std::invalid_argument("missing the file to import");
  }
  if (window == 0) {
    throw std::invalid_argument("--window must be at least 1");
  }
  st.file = file;
  return with_store(
      c, [file, window, st](redis_store& s) { return import_tasks(s, file, window, st); });
}

}  // namespace corvo::tool
