// `corvo schedule events` (schedule_events.hpp).
#include "schedule_events.hpp"

#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <iostream>
#include <stdexcept>

#include "cli.hpp"
#include "store_target.hpp"
#include "time_text.hpp"

namespace corvo::tool {

namespace asio = boost::asio;
namespace json = boost::json;
namespace po = boost::program_options;
using namespace corvo::schedule;

namespace {

json::object to_json(const task_event& e) {
  json::object o;
  o["at"] = iso8601(e.at);
  o["kind"] = std::string(to_string(e.kind));
  o["task"] = e.task_id;
  o["type"] = e.type;
  if (e.attempt != 0) {
    o["attempt"] = e.attempt;
  }
  if (e.due) {
    o["due"] = iso8601(*e.due);
  }
  if (!e.reason.empty()) {
    o["reason"] = e.reason;
  }
  o["source"] = e.source;
  o["shard"] = e.shard;
  o["position"] = e.position;
  return o;
}

void print_event(const task_event& e, bool as_json) {
  if (as_json) {
    std::cout << json::serialize(to_json(e)) << std::endl;  // a line at once (--follow)
    return;
  }
  std::cout << iso8601(e.at) << "  " << to_string(e.kind) << "  " << e.task_id << "  " << e.type;
  if (e.attempt != 0) {
    std::cout << "  attempt " << e.attempt;
  }
  if (e.due) {
    std::cout << "  due " << iso8601(*e.due);
  }
  if (!e.reason.empty()) {
    std::cout << "  " << e.reason;
  }
  std::cout << "  (" << e.source << ")" << std::endl;
}

struct events_request {
  event_query query;
  bool follow = false;
  bool as_json = false;
};

asio::awaitable<int> show_events(redis::client& conn, store_target target, events_request r) {
  auto options = co_await store_options(conn, target);
  redis_store s(conn, target.redis, std::move(options));
  auto reader = co_await s.events(r.query);
  for (;;) {  // what the streams hold now
    const auto batch = co_await reader->read(512, std::chrono::milliseconds::zero());
    if (batch.empty()) {
      break;
    }
    for (const auto& e : batch) {
      print_event(e, r.as_json);
    }
  }
  if (!r.follow) {
    if (r.as_json) {
      std::cout << json::serialize(json::object{{"position", reader->position()}}) << std::endl;
    }
    co_return 0;
  }
  for (;;) {
    const auto batch = co_await reader->read(512, std::chrono::hours(1));
    for (const auto& e : batch) {
      print_event(e, r.as_json);
    }
  }
}

}  // namespace

int schedule_events(const std::vector<std::string>& args) {
  store_flags c;
  events_request r;
  std::vector<std::string> kinds;
  std::string from = "start";
  po::options_description options("options");
  add_store_flags(options, c);
  options.add_options()("follow,f", po::bool_switch(&r.follow),
                        "go on printing new events until killed")(
      "task", po::value(&r.query.task_id), "only this task's events")(
      "type", po::value(&r.query.type), "only events of tasks of this type")(
      "kind", po::value(&kinds),
      "only this kind (scheduled, started, succeeded, failed, dead, cancelled); repeatable")(
      "from", po::value(&from)->default_value("start"),
      "start, now, or a position printed by an earlier --json run");
  if (help_requested(args,
                     "corvo schedule events [--follow] [--task ID] [--type TYPE] [--kind KIND]... "
                     "[--from start|now|POSITION] [--json]",
                     options)) {
    return 0;
  }
  parse_arguments(args, options);
  for (const auto& k : kinds) {
    const auto kind = parse_event_kind(k);
    if (!kind) {
      throw std::invalid_argument("--kind: '" + k +
                                  "' is not one of scheduled, started, succeeded, failed, dead, "
                                  "cancelled");
    }
    r.query.kinds.push_back(*kind);
  }
  r.query.from = from == "start" ? std::string(events_from_start)
                 : from == "now" ? std::string(events_from_now)
                                 : from;
  r.as_json = c.json_output;
  const auto target = resolve_target(c);
  return run_with_client(target,
                         [target, r](redis::client& conn) { return show_events(conn, target, r); });
}

}  // namespace corvo::tool
