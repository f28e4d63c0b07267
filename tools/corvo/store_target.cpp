#include "store_target.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/string.hpp>
#include <boost/program_options/value_semantic.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <cstdlib>
#include <stdexcept>

namespace corvo::tool {
namespace {

namespace asio = boost::asio;
namespace po = boost::program_options;
using clock_type = std::chrono::steady_clock;

std::chrono::milliseconds parse_timeout(const std::string& text) {
  corvo::config c;
  c.set("connect-timeout", boost::json::string(text), "--connect-timeout");
  const auto timeout = c.get<std::chrono::milliseconds>("connect-timeout");
  if (timeout.count() == 0) {
    throw std::invalid_argument("--connect-timeout must be more than 0");
  }
  return timeout;
}

struct endpoint {
  std::string host;
  std::string port;
  std::string text() const { return host + ":" + port; }
};

// A seed is a redis:// URL or "host:port".
endpoint endpoint_of(const std::string& seed) {
  if (seed.find("://") != std::string::npos) {
    const auto c = redis::config::from_url(seed);
    return {c.host, c.port};
  }
  const auto colon = seed.rfind(':');
  if (colon == std::string::npos) {
    return {seed, "6379"};
  }
  return {seed.substr(0, colon), seed.substr(colon + 1)};
}

std::vector<endpoint> endpoints_of(const redis::client_config& cfg) {
  if (!cfg.cluster) {
    return {{cfg.server.host, cfg.server.port}};
  }
  std::vector<endpoint> out;
  for (const auto& seed : cfg.cluster->seeds) {
    out.push_back(endpoint_of(seed));
  }
  return out;
}

asio::awaitable<void> tcp_connect(endpoint where) {
  const auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver(executor);
  const auto found = co_await resolver.async_resolve(where.host, where.port, asio::use_awaitable);
  asio::ip::tcp::socket socket(executor);
  co_await asio::async_connect(socket, found, asio::use_awaitable);
}

asio::awaitable<void> ping(redis::client& client) {
  redis::request req;
  req.push("PING");
  co_await client.exec(req);
}

std::string describe(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const boost::system::system_error& e) {
    return e.code().message();
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    out += (out.empty() ? "" : ", ") + item;
  }
  return out;
}

}  // namespace

void add_store_flags(po::options_description& options, store_flags& flags) {
  options.add_options()("help,h", "show this help")(
      "config", po::value(&flags.config_file),
      "the application's configuration file (its redis section, scheduler.namespace and "
      "scheduler.shards; CORVO_* overrides apply)")(
      "redis", po::value(&flags.redis_url),
      "Redis URL (default: the file's, else $CORVO_REDIS__URL, else redis://127.0.0.1:6379)")(
      "cluster", po::value(&flags.cluster_seeds)->composing(),
      "Redis Cluster seed URL (repeatable; replaces --redis)")(
      "namespace", po::value(&flags.name_space),
      "scheduler namespace (default: the file's scheduler.namespace, else corvo)")(
      "shards", po::value(&flags.shards),
      "shards of the namespace (default: the file's scheduler.shards, else the count stored "
      "in Redis)")("connect-timeout", po::value(&flags.connect_timeout)->default_value("3s"),
                   "give up when Redis does not answer within this")(
      "json", po::bool_switch(&flags.json_output), "print JSON");
}

store_target resolve_target(const store_flags& flags) {
  store_target target;
  target.connect_timeout = parse_timeout(flags.connect_timeout);
  target.name_space = schedule::redis_store_options{}.name_space;
  if (!flags.config_file.empty()) {
    // The application's own reading of its file: same defaults, same errors.
    const auto app = corvo::config::from_file(flags.config_file);
    const auto options = schedule::scheduler_options::from(app);
    if (options.provider != schedule::provider::redis) {
      throw std::invalid_argument(flags.config_file +
                                  ": scheduler.provider is \"memory\": its tasks live in the "
                                  "application's process, not in Redis");
    }
    target.redis = redis::client_config::from(app);
    target.name_space = options.redis.name_space;
    target.shards = options.redis.shards;
    target.events = options.events;
    target.compact = options.redis.compact;
    target.compact_after = options.redis.compact_after;
    if (flags.shards != 0 && flags.shards != options.redis.shards &&
        (flags.name_space.empty() || flags.name_space == options.redis.name_space)) {
      throw std::invalid_argument(
          "--shards " + std::to_string(flags.shards) + " contradicts scheduler.shards = " +
          std::to_string(options.redis.shards) + " in " + flags.config_file);
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
  if (!flags.name_space.empty() && flags.name_space != target.name_space) {
    target.name_space = flags.name_space;
    target.shards.reset();  // the file's count belongs to the file's namespace
  }
  if (flags.shards != 0) {
    target.shards = flags.shards;
  }
  // A CLI command gives up rather than reconnecting for ever.
  target.redis.server.connect_timeout = target.connect_timeout;
  if (target.redis.cluster) {
    target.redis.cluster->node.connect_timeout = target.connect_timeout;
  }
  for (const auto& e : endpoints_of(target.redis)) {
    target.addresses.push_back(e.text());
  }
  return target;
}

asio::awaitable<void> check_reachable(redis::client& client, const store_target& target) {
  const auto deadline = clock_type::now() + target.connect_timeout;
  const auto within = std::to_string(target.connect_timeout.count()) + "ms";
  // TCP first: a refused port or an unknown host is reported at once, with the reason.
  std::vector<std::string> failures;
  for (const auto& e : endpoints_of(target.redis)) {
    try {
      // (named, not a temporary inside the co_await expression: DESIGN §9)
      auto connect = tcp_connect(e);
      co_await corvo::with_deadline(std::move(connect), deadline);
      failures.clear();
      break;  // one reachable seed is enough
    } catch (const boost::system::system_error& error) {
      const auto why = error.code() == corvo::error::timed_out ? "no answer within " + within
                                                               : error.code().message();
      failures.push_back(e.text() + " (" + why + ")");
    }
  }
  if (!failures.empty()) {
    throw std::runtime_error("cannot connect to Redis at " + joined(failures));
  }
  // Then the Redis handshake and a PING.
  std::exception_ptr failed;
  try {
    auto answer = ping(client);
    co_await corvo::with_deadline(std::move(answer), deadline);
  } catch (const boost::system::system_error& error) {
    if (error.code() == corvo::error::timed_out) {
      throw std::runtime_error(
          "Redis at " + joined(target.addresses) + ": no answer within " + within +
          " (the port accepts connections but no Redis handshake completed: not a Redis "
          "server, TLS or password mismatch, or a hung server)");
    }
    failed = std::current_exception();
  } catch (...) {
    failed = std::current_exception();
  }
  if (failed) {
    throw std::runtime_error("Redis at " + joined(target.addresses) + ": " + describe(failed));
  }
}

asio::awaitable<std::optional<unsigned>> stored_shard_count(redis::client& client,
                                                            const std::string& name_space) {
  // The store keeps the namespace's shard count in Redis: an adopting store (shards = 0)
  // reads it; a namespace nothing has used yet has none.
  schedule::redis_store probe(client, client.get_config(), {.name_space = name_space, .shards = 0});
  redis::request exists;
  exists.push("EXISTS", probe.shard_count_key());
  redis::response<long long> found;
  co_await client.exec(exists, found);
  if (std::get<0>(found).value() == 0) {
    co_return std::nullopt;
  }
  co_await probe.open();  // throws when the key holds something else than a count
  co_return probe.shards();
}

asio::awaitable<schedule::redis_store_options> store_options(redis::client& client,
                                                             const store_target& target) {
  schedule::redis_store_options options;
  options.name_space = target.name_space;
  options.events = target.events;
  options.compact = target.compact;
  options.compact_after = target.compact_after;
  if (target.shards) {
    options.shards = *target.shards;
    co_return options;
  }
  const auto stored = co_await stored_shard_count(client, target.name_space);
  if (!stored) {
    throw std::invalid_argument(
        "the shard count of namespace '" + target.name_space +
        "' is unknown: give --config APP.json (the application's configuration file) or "
        "--shards N (its scheduler.shards); a wrong count writes tasks no dispatcher claims");
  }
  options.shards = *stored;
  co_return options;
}

}  // namespace corvo::tool
