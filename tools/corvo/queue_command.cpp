// `corvo queue info|dead list|dead replay|dead purge`: introspection and dead-letter
// administration of a list queue (work_queue or reliable_queue). Readable output by default,
// one JSON document with --json.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/log.hpp>
#include <corvo/queue/admin.hpp>
#include <corvo/queue/options.hpp>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli.hpp"
#include "command.hpp"
#include "store_target.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace po = boost::program_options;
namespace redis = corvo::redis;
namespace queue = corvo::queue;

namespace {

using corvo::tool::help_requested;
using corvo::tool::parse_arguments;

constexpr const char* queue_usage = R"(usage:
  corvo queue info QUEUE
  corvo queue dead list QUEUE [--offset N] [--limit N]
  corvo queue dead replay QUEUE (ID | --all)
  corvo queue dead purge QUEUE (ID | --all)
common options: --config APP.json [--section SECTION]  (the application's configuration: its
                  redis section, and QUEUE from SECTION.name when QUEUE is not given;
                  SECTION defaults to "queue")
                --redis URL | --cluster URL...  --connect-timeout DURATION (default 3s)  --json
  (corvo queue info --help etc. list every option)
)";

struct queue_flags {
  std::string config_file;
  std::string section = "queue";
  std::string redis_url;
  std::vector<std::string> cluster_seeds;
  std::string connect_timeout = "3s";
  bool json_output = false;
  std::string queue;
};

void add_flags(po::options_description& options, queue_flags& flags) {
  options.add_options()("help,h", "show this help")(
      "config", po::value(&flags.config_file),
      "the application's configuration file (its redis section; QUEUE from SECTION.name)")(
      "section", po::value(&flags.section)->default_value("queue"),
      "the queue's section in --config")(
      "redis", po::value(&flags.redis_url),
      "Redis URL (default: the file's, else $CORVO_REDIS__URL, else redis://127.0.0.1:6379)")(
      "cluster", po::value(&flags.cluster_seeds)->composing(),
      "Redis Cluster seed URL (repeatable; replaces --redis)")(
      "connect-timeout", po::value(&flags.connect_timeout)->default_value("3s"),
      "give up when Redis does not answer within this")(
      "json", po::bool_switch(&flags.json_output), "print JSON")("queue", po::value(&flags.queue),
                                                                 "the queue (or the first word)");
}

corvo::tool::store_target resolve(queue_flags& flags) {
  corvo::tool::store_target target;
  {
    corvo::config c;
    c.set("connect-timeout", json::string(flags.connect_timeout), "--connect-timeout");
    target.connect_timeout = c.get<std::chrono::milliseconds>("connect-timeout");
    if (target.connect_timeout.count() == 0) {
      throw std::invalid_argument("--connect-timeout must be more than 0");
    }
  }
  if (!flags.config_file.empty()) {
    const auto app = corvo::config::from_file(flags.config_file);
    target.redis = redis::client_config::from(app);
    if (flags.queue.empty()) {
      // The application's own reading of its queue section: same defaults, same errors.
      flags.queue = queue::queue_options::from(app, flags.section).name;
    }
  } else {
    const char* env = std::getenv("CORVO_REDIS__URL");
    target.redis = redis::client_config::from_url(env ? env : "redis://127.0.0.1:6379");
  }
  if (!flags.cluster_seeds.empty()) {
    target.redis = redis::client_config::from_cluster_seeds(flags.cluster_seeds);
  } else if (!flags.redis_url.empty()) {
    target.redis = redis::client_config::from_url(flags.redis_url);
  }
  if (flags.queue.empty()) {
    throw std::invalid_argument("missing QUEUE (or --config APP.json with a queue section)");
  }
  target.redis.server.connect_timeout = target.connect_timeout;
  if (target.redis.cluster) {
    target.redis.cluster->node.connect_timeout = target.connect_timeout;
    target.addresses = target.redis.cluster->seeds;
  } else {
    target.addresses = {target.redis.server.address()};
  }
  return target;
}

using queue_operation = std::function<asio::awaitable<int>(redis::client&, std::string)>;

int with_queue(queue_flags& flags, queue_operation op) {
  const auto target = resolve(flags);  // may take the queue's name from --config
  return corvo::tool::run_with_client(
      target,
      [name = flags.queue, op = std::move(op)](redis::client& client) { return op(client, name); });
}

std::string iso8601(std::int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  std::ostringstream out;
  out << std::put_time(&tm, "%Y-%m-%dT%H:%M:%S") << '.' << std::setw(3) << std::setfill('0')
      << ms % 1000 << 'Z';
  return out.str();
}

// ---- info ------------------------------------------------------------------------------

asio::awaitable<int> show_info(redis::client& client, std::string name, bool as_json) {
  const auto info = co_await queue::inspect(client, name);
  if (as_json) {
    json::array consumers;
    for (const auto& c : info.consumers) {
      consumers.push_back({{"id", c.id},
                           {"alive", c.alive},
                           {"processing", c.processing},
                           {"heartbeat_ttl_ms", c.heartbeat_ttl_ms},
                           {"last_heartbeat_ms", c.last_heartbeat_ms}});
    }
    std::cout << json::serialize(json::object{{"queue", info.name},
                                              {"depth", info.depth},
                                              {"dead", info.dead},
                                              {"delayed", info.delayed},
                                              {"consumers", std::move(consumers)}})
              << "\n";
    co_return 0;
  }
  std::cout << "queue " << info.name << ": " << info.depth << " waiting, " << info.dead << " dead";
  if (info.delayed > 0) {
    std::cout << ", " << info.delayed << " delayed (retry_delay)";
  }
  std::cout << "\n";
  if (info.consumers.empty()) {
    std::cout << "consumers: (none registered)\n";
  } else {
    std::cout << "consumers:\n";
  }
  for (const auto& c : info.consumers) {
    std::cout << "  " << c.id << "  "
              << (c.alive
                      ? "alive (heartbeat expires in " + std::to_string(c.heartbeat_ttl_ms) + " ms)"
                      : std::string("dead (heartbeat expired)"))
              << "  processing " << c.processing << "  last heartbeat "
              << iso8601(c.last_heartbeat_ms) << "\n";
  }
  co_return 0;
}

int queue_info(const std::vector<std::string>& args) {
  queue_flags flags;
  po::options_description options("options");
  add_flags(options, flags);
  po::positional_options_description positional;
  positional.add("queue", 1);
  if (help_requested(args, "corvo queue info QUEUE", options)) {
    return 0;
  }
  parse_arguments(args, options, &positional);
  const bool as_json = flags.json_output;
  return with_queue(flags, [as_json](redis::client& c, std::string name) {
    return show_info(c, std::move(name), as_json);
  });
}

// ---- dead letters ----------------------------------------------------------------------

asio::awaitable<int> list_dead(redis::client& client, std::string name, std::size_t offset,
                               std::size_t limit, bool as_json) {
  const auto letters = co_await queue::dead_letters(client, name, offset, limit);
  if (as_json) {
    json::array out;
    for (const auto& d : letters) {
      out.push_back({{"id", d.id},
                     {"attempts", d.attempts},
                     {"reason", d.reason},
                     {"consumer", d.consumer},
                     {"at_ms", d.at_ms},
                     {"body", d.body}});
    }
    std::cout << json::serialize(out) << "\n";
    co_return 0;
  }
  for (const auto& d : letters) {
    std::cout << (d.id.empty() ? "(no id)" : d.id) << "  attempts " << d.attempts << "  consumer "
              << d.consumer << "  at " << iso8601(d.at_ms) << "  reason: " << d.reason
              << "  body: " << d.body << "\n";
  }
  if (letters.empty()) {
    std::cout << "(none)\n";
  }
  co_return 0;
}

int dead_list(const std::vector<std::string>& args) {
  queue_flags flags;
  std::size_t offset = 0, limit = 50;
  po::options_description options("options");
  add_flags(options, flags);
  options.add_options()("offset", po::value(&offset)->default_value(0), "skip this many")(
      "limit", po::value(&limit)->default_value(50), "show at most this many");
  po::positional_options_description positional;
  positional.add("queue", 1);
  if (help_requested(args, "corvo queue dead list QUEUE [--offset N] [--limit N]", options)) {
    return 0;
  }
  parse_arguments(args, options, &positional);
  const bool as_json = flags.json_output;
  return with_queue(flags, [=](redis::client& c, std::string name) {
    return list_dead(c, std::move(name), offset, limit, as_json);
  });
}

asio::awaitable<int> change_dead(redis::client& client, std::string name, std::string id,
                                 bool replay, bool as_json) {
  std::size_t count = 0;
  if (replay) {
    count = co_await queue::replay_dead(client, name, id);
  } else {
    count = co_await queue::purge_dead(client, name, id);
  }
  const std::string verb = replay ? "replayed" : "purged";
  if (as_json) {
    json::object out{{verb, count}};
    if (!id.empty()) {
      out["id"] = id;
    }
    std::cout << json::serialize(out) << "\n";
  } else if (count == 0 && !id.empty()) {
    std::cout << "no dead letter of item " << id << "\n";
  } else {
    std::cout << verb << " " << count << " dead letter(s)\n";
  }
  co_return (count == 0 && !id.empty()) ? 1 : 0;
}

int dead_change(const std::vector<std::string>& args, bool replay) {
  queue_flags flags;
  std::string id;
  bool all = false;
  po::options_description options("options");
  add_flags(options, flags);
  options.add_options()("id", po::value(&id), "the item id (or the second word)")(
      "all", po::bool_switch(&all), "every dead letter of the queue");
  po::positional_options_description positional;
  positional.add("queue", 1).add("id", 1);
  const std::string usage =
      std::string("corvo queue dead ") + (replay ? "replay" : "purge") + " QUEUE (ID | --all)";
  if (help_requested(args, usage, options)) {
    return 0;
  }
  parse_arguments(args, options, &positional);
  if (id.empty() == !all) {
    throw std::invalid_argument("give exactly one of an item ID and --all");
  }
  const bool as_json = flags.json_output;
  return with_queue(flags, [=](redis::client& c, std::string name) {
    return change_dead(c, std::move(name), id, replay, as_json);
  });
}

std::vector<std::string> rest(const std::vector<std::string>& args) {
  return {args.begin() + 1, args.end()};
}

bool wants_help(const std::vector<std::string>& args) {
  return args.empty() || args[0] == "--help" || args[0] == "-h";
}

int run_queue(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    (args.empty() ? std::cerr : std::cout) << queue_usage;
    return args.empty() ? 2 : 0;
  }
  const auto& verb = args[0];
  if (verb == "info") {
    return queue_info(rest(args));
  }
  if (verb == "dead") {
    const auto words = rest(args);
    if (wants_help(words)) {
      (words.empty() ? std::cerr : std::cout) << queue_usage;
      return words.empty() ? 2 : 0;
    }
    if (words[0] == "list") {
      return dead_list(rest(words));
    }
    if (words[0] == "replay") {
      return dead_change(rest(words), true);
    }
    if (words[0] == "purge") {
      return dead_change(rest(words), false);
    }
    std::cerr << "corvo queue dead: unknown subcommand '" << words[0] << "'\n\n" << queue_usage;
    return 2;
  }
  std::cerr << "corvo queue: unknown subcommand '" << verb << "'\n\n" << queue_usage;
  return 2;
}

const corvo::tool::registration queue_command{
    {"queue", "depth, consumers and dead letters of a list queue; replay and purge", run_queue}};

}  // namespace
