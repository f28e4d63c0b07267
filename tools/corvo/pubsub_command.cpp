// `corvo pubsub publish|listen`: publish a message on a channel (or shard channel), or
// print the messages of channels, patterns and shard channels as they arrive. Readable
// output by default, one JSON document per line with --json.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/pubsub/publish.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <cstdlib>
#include <iostream>

#include "cli.hpp"
#include "command.hpp"
#include "store_target.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace po = boost::program_options;
namespace redis = corvo::redis;
namespace pubsub = corvo::pubsub;

namespace {

using corvo::tool::help_requested;
using corvo::tool::parse_arguments;

constexpr const char* pubsub_usage = R"(usage:
  corvo pubsub publish CHANNEL MESSAGE [--shard]
  corvo pubsub listen [--channel C]... [--pattern P]... [--shard-channel S]...
                      [--count N] [--for DURATION]
common options: --config APP.json (the application's configuration: its redis and pubsub
                sections) | --redis URL | --cluster URL...
                --connect-timeout DURATION (default 3s) --json
  (corvo pubsub publish --help etc. list every option)
listen prints each message as it arrives ("channel: payload", or a JSON line with kind,
channel, pattern and payload) until --count messages were printed, --for elapsed, or
Ctrl-C; it exits 0 when the count was reached or the time was up.
)";

struct target_flags {
  std::string config_file;
  std::string redis_url;
  std::vector<std::string> cluster_seeds;
  std::string connect_timeout = "3s";
  bool json_output = false;
};

void add_target_flags(po::options_description& options, target_flags& flags) {
  options.add_options()("help,h", "show this help")(
      "config", po::value(&flags.config_file),
      "the application's configuration file (its redis and pubsub sections; CORVO_* "
      "overrides apply)")("redis", po::value(&flags.redis_url),
                          "Redis URL (default: the file's, else $CORVO_REDIS__URL, else "
                          "redis://127.0.0.1:6379)")(
      "cluster", po::value(&flags.cluster_seeds)->composing(),
      "Redis Cluster seed URL (repeatable; replaces --redis)")(
      "connect-timeout", po::value(&flags.connect_timeout)->default_value("3s"),
      "give up when Redis does not answer within this")("json", po::bool_switch(&flags.json_output),
                                                        "print JSON");
}

std::chrono::milliseconds parse_duration(const std::string& option, const std::string& text) {
  corvo::config c;
  c.set(option, json::string(text), "--" + option);
  std::chrono::milliseconds value{};
  try {
    value = c.get<std::chrono::milliseconds>(option);
  } catch (const corvo::config_error&) {
    throw std::invalid_argument("--" + option + " '" + text +
                                "' is not a duration (e.g. 250ms, 30s, 5m)");
  }
  if (value.count() <= 0) {
    throw std::invalid_argument("--" + option + " must be more than 0");
  }
  return value;
}

struct target {
  corvo::tool::store_target where;
  pubsub::subscriber_options options;
};

target resolve(const target_flags& flags) {
  target out;
  out.where.connect_timeout = parse_duration("connect-timeout", flags.connect_timeout);
  if (!flags.config_file.empty()) {
    const auto app = corvo::config::from_file(flags.config_file);
    out.where.redis = redis::client_config::from(app);
    out.options = pubsub::subscriber_options::from(app);
  } else {
    const char* env = std::getenv("CORVO_REDIS__URL");
    out.where.redis = redis::client_config::from_url(env ? env : "redis://127.0.0.1:6379");
  }
  if (!flags.cluster_seeds.empty()) {
    out.where.redis = redis::client_config::from_cluster_seeds(flags.cluster_seeds);
  } else if (!flags.redis_url.empty()) {
    out.where.redis = redis::client_config::from_url(flags.redis_url);
  }
  out.where.redis.server.connect_timeout = out.where.connect_timeout;
  if (out.where.redis.cluster) {
    out.where.redis.cluster->node.connect_timeout = out.where.connect_timeout;
    for (const auto& seed : out.where.redis.cluster->seeds) {
      out.where.addresses.push_back(seed);
    }
  } else {
    out.where.addresses.push_back(out.where.redis.server.address());
  }
  return out;
}

void quiet_logs() {
  corvo::log::options quiet;
  quiet.min_severity = corvo::log::severity::error;
  corvo::log::init(quiet);
}

// Runs `operation` on `ctx` and returns its exit code (rethrows its failure); `stop` ends
// what runs beside it.
template <class Stop>
int run_to_end(asio::io_context& ctx, asio::awaitable<int> operation, Stop stop) {
  int code = 1;
  std::exception_ptr failed;
  asio::co_spawn(ctx, std::move(operation), [&](std::exception_ptr e, int result) {
    failed = e;
    code = result;
    stop();
  });
  ctx.run();
  if (failed) {
    std::rethrow_exception(failed);
  }
  return code;
}

// ---- publish ------------------------------------------------------------------------------

asio::awaitable<int> publish_once(redis::client& client, corvo::tool::store_target where,
                                  std::string channel, std::string message, bool shard,
                                  bool as_json) {
  co_await corvo::tool::check_reachable(client, where);
  const std::int64_t receivers = shard ? co_await pubsub::spublish(client, channel, message)
                                       : co_await pubsub::publish(client, channel, message);
  if (as_json) {
    std::cout << json::serialize(
                     json::object{{"channel", channel}, {"shard", shard}, {"receivers", receivers}})
              << "\n";
  } else {
    std::cout << "published to " << (shard ? "shard channel " : "channel ") << channel << " ("
              << receivers << " receivers" << (shard ? "" : " on the node that took it") << ")\n";
  }
  co_return 0;
}

int run_publish(const std::vector<std::string>& args) {
  target_flags flags;
  std::string channel, message;
  bool shard = false;
  po::options_description options("options");
  add_target_flags(options, flags);
  options.add_options()("channel", po::value(&channel)->required(), "the channel")(
      "message", po::value(&message)->required(), "the payload")("shard", po::bool_switch(&shard),
                                                                 "SPUBLISH to a shard channel");
  po::positional_options_description positional;
  positional.add("channel", 1).add("message", 1);
  if (help_requested(args, "corvo pubsub publish CHANNEL MESSAGE [--shard]", options)) {
    return 0;
  }
  parse_arguments(args, options, &positional);
  if (channel.empty()) {
    throw std::invalid_argument("the channel name is empty");
  }
  quiet_logs();
  const auto t = resolve(flags);
  asio::io_context ctx(1);
  redis::client client(ctx.get_executor(), t.where.redis);
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  return run_to_end(ctx, publish_once(client, t.where, channel, message, shard, flags.json_output),
                    [&client] { client.cancel(); });
}

// ---- listen -------------------------------------------------------------------------------

struct listen_request {
  std::vector<std::string> channels, patterns, shard_channels;
  std::uint64_t count = 0;  // 0: no limit
  std::optional<std::chrono::milliseconds> duration;
  bool as_json = false;
};

void print(const pubsub::message& m, bool as_json) {
  if (as_json) {
    json::object line{
        {"kind", pubsub::to_string(m.kind)}, {"channel", m.channel}, {"payload", m.payload}};
    if (m.kind == pubsub::message_kind::pattern) {
      line["pattern"] = m.pattern;
    }
    std::cout << json::serialize(line) << std::endl;
  } else {
    std::cout << m.channel << ": " << m.payload << std::endl;
  }
}

asio::awaitable<void> receive_and_print(pubsub::subscriber& sub, listen_request request) {
  for (std::uint64_t printed = 0; request.count == 0 || printed < request.count; ++printed) {
    print(co_await sub.receive(), request.as_json);
  }
}

asio::awaitable<int> listen(pubsub::subscriber& sub, corvo::tool::store_target where,
                            listen_request request) {
  co_await corvo::tool::check_reachable(sub.client(), where);
  co_await sub.subscribe(request.channels);
  co_await sub.psubscribe(request.patterns);
  co_await sub.ssubscribe(request.shard_channels);
  if (!request.as_json) {
    std::cerr << "listening (Ctrl-C to stop)\n";
  }
  if (request.duration) {
    try {
      co_await corvo::with_timeout(receive_and_print(sub, request), *request.duration);
    } catch (const boost::system::system_error& e) {
      if (e.code() != corvo::error::timed_out) {
        throw;
      }
    }
  } else {
    co_await receive_and_print(sub, request);
  }
  const auto stats = sub.stats();
  if (stats.dropped != 0) {
    std::cerr << "warning: " << stats.dropped << " messages dropped (output too slow)\n";
  }
  co_return 0;
}

int run_listen(const std::vector<std::string>& args) {
  target_flags flags;
  listen_request request;
  std::string duration;
  po::options_description options("options");
  add_target_flags(options, flags);
  options.add_options()("channel", po::value(&request.channels)->composing(),
                        "a channel (repeatable)")(
      "pattern", po::value(&request.patterns)->composing(), "a pattern, e.g. news.* (repeatable)")(
      "shard-channel", po::value(&request.shard_channels)->composing(),
      "a shard channel (repeatable)")("count", po::value(&request.count),
                                      "stop after this many messages")(
      "for", po::value(&duration), "stop after this long (e.g. 30s)");
  po::positional_options_description positional;
  positional.add("channel", -1);
  if (help_requested(args,
                     "corvo pubsub listen [--channel C]... [--pattern P]... [--shard-channel S]...",
                     options)) {
    return 0;
  }
  const auto values = parse_arguments(args, options, &positional);
  if (request.channels.empty() && request.patterns.empty() && request.shard_channels.empty()) {
    throw std::invalid_argument(
        "nothing to listen to: give --channel, --pattern or --shard-channel");
  }
  if (values.count("count") != 0 && request.count == 0) {
    throw std::invalid_argument("--count must be more than 0");
  }
  if (!duration.empty()) {
    request.duration = parse_duration("for", duration);
  }
  request.as_json = flags.json_output;
  quiet_logs();
  const auto t = resolve(flags);
  asio::io_context ctx(1);
  pubsub::subscriber sub(ctx.get_executor(), t.where.redis, t.options);
  asio::co_spawn(ctx, sub.run(), [](std::exception_ptr) {});
  return run_to_end(ctx, listen(sub, t.where, request), [&sub] { sub.cancel(); });
}

int run_pubsub(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << pubsub_usage;
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (args[0] == "publish") {
      return run_publish(rest);
    }
    if (args[0] == "listen") {
      return run_listen(rest);
    }
  } catch (const po::error& e) {
    std::cerr << "corvo pubsub " << args[0] << ": " << e.what() << "\n\n" << pubsub_usage;
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "corvo pubsub " << args[0] << ": " << e.what() << "\n";
    return 2;
  }
  std::cerr << "corvo pubsub: unknown subcommand '" << args[0] << "'\n\n" << pubsub_usage;
  return 2;
}

const corvo::tool::registration pubsub_command{
    {"pubsub", "publish a message, or print the messages of channels as they arrive", run_pubsub}};

}  // namespace
