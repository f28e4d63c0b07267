// live_fanout: chat rooms / live notifications over Redis pub/sub and WebSockets.
//
// Messages published to a room's channel (`room.NAME`, with PUBLISH, or SPUBLISH for shard
// channels) reach every WebSocket client connected to ws://HOST:PORT/rooms/NAME. The server
// subscribes with one pattern (`room.*`), a channel per room, or a shard channel per room
// (`--subscription`); a client that does not keep up loses its oldest frames or is closed
// (`--slow-policy`), counted in GET /stats, and never holds up the rest of its room.
//
//   live_fanout --redis redis://127.0.0.1:6379 [--listen 127.0.0.1:8080]   # serve
//   live_fanout --redis URL --demo [--clients 50] [--rooms 5] [--messages 200]
//
// The program is a corvo::health::app: the WebSocket listener and the Redis client run from
// start to shutdown; the subscriber is a component under the Redis dependency (PING probe):
// when Redis fails it is stopped (the clients stay connected), when Redis answers again a new
// subscriber subscribes the rooms and the fan-out resumes. SIGINT/SIGTERM drain everything.
//
// --demo runs the server and its own clients in this process: the clients join their rooms,
// every room gets --messages messages, and the program checks that each client received
// exactly its room's messages in publish order; then a client that stops reading shows the
// slow-consumer policy while a fast client of the same room still gets everything. It ends
// with `OK ...` (exit 0) or the failures (exit 1). scripts/demo live_fanout runs it.
//
// Configuration: the built-in JSON (--print-config) or --config FILE, CORVO_* environment
// overrides; keys: redis.*, live_fanout.{listen,subscription,client_queue,slow_policy},
// pubsub.* (the subscriber's buffer), health.* (probes, stop and restart: corvo/health/app.hpp).

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/health/app.hpp>
#include <corvo/health/probes.hpp>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sample/main.hpp>

#include "fanout_server.hpp"
#include "room_client.hpp"
#include "traffic.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace po = boost::program_options;
namespace health = corvo::health;
using namespace std::chrono_literals;

namespace live_fanout {

struct settings {
  std::string redis_url;
  bool cluster = false;
  std::string listen = "127.0.0.1:0";
  std::string subscription = "pattern";
  std::string slow_policy = "drop_oldest";
  std::size_t client_queue = 256;
  std::string config_file;
  bool demo = false;
  std::size_t clients = 50;
  std::size_t rooms = 5;
  std::size_t messages = 200;
};

std::string default_config(const settings& s) {
  json::object redis = {{"url", s.redis_url}};
  if (s.cluster) {
    redis["cluster"] = json::object{{"enabled", true}};
  }
  json::object cfg = {{"redis", redis},
                      {"live_fanout",
                       {{"listen", s.listen},
                        {"subscription", s.subscription},
                        {"client_queue", s.client_queue},
                        {"slow_policy", s.slow_policy}}},
                      {"pubsub", {{"buffer", {{"max_messages", 100000}}}}},
                      {"health", {{"probe_interval", "200ms"}, {"probe_timeout", "500ms"}}}};
  return json::serialize(cfg);
}

// ---- serving --------------------------------------------------------------------------------

void print_banner(const fanout_server& server) {
  std::cout << "live_fanout: ws://" << server.options().listen_address << ':' << server.port()
            << "/rooms/NAME  (stats: http://" << server.options().listen_address << ':'
            << server.port() << "/stats; subscription: " << to_string(server.options().subscription)
            << ")" << std::endl;
}

// ---- the demo ---------------------------------------------------------------------------------

// The kernel's largest automatic send buffer: how much a non-reading client's socket absorbs
// before frames queue in the server (its receive buffer is set small).
std::size_t max_send_buffer() {
  std::ifstream in("/proc/sys/net/ipv4/tcp_wmem");
  std::size_t low = 0, initial = 0, high = 4u << 20;
  in >> low >> initial >> high;
  return high;
}

std::vector<std::string> room_names(std::size_t n) {
  static const char* names[] = {"lobby", "sports", "music", "news", "tech", "games", "food"};
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(i < std::size(names) ? names[i] : "room" + std::to_string(i));
  }
  return out;
}

asio::awaitable<void> listen_all(const client_list& clients, corvo::task_group& group) {
  for (const auto& c : clients) {
    auto reading = c->listen();
    co_await group.spawn(std::move(reading));
  }
}

asio::awaitable<int> demo(fanout_server& server, corvo::redis::client& redis, settings s) {
  auto ex = co_await asio::this_coro::executor;
  const auto command = server.options().subscription == subscription_mode::shard
                           ? publish_command::spublish
                           : publish_command::publish;
  std::vector<std::string> failures;

  // 1. Clients join their rooms, round robin.
  const auto rooms = room_names(s.rooms);
  client_list clients;
  for (std::size_t i = 0; i < s.clients; ++i) {
    clients.push_back(
        std::make_unique<room_client>(ex, "127.0.0.1", server.port(), rooms[i % rooms.size()]));
    co_await clients.back()->join();
  }
  corvo::task_group readers(ex);
  co_await listen_all(clients, readers);
  std::cout << "joined: " << s.clients << " WebSocket clients in " << s.rooms << " rooms ("
            << to_string(server.options().subscription) << " subscription)" << std::endl;

  // 2. Every room gets its messages; wait until every client has them.
  publish_log log;
  const auto started = std::chrono::steady_clock::now();
  co_await publish_messages(redis, rooms, s.messages, command, 0, log);
  const auto published = std::chrono::steady_clock::now();
  const auto deadline = published + 30s;
  while (!all_delivered(clients, log) && std::chrono::steady_clock::now() < deadline) {
    co_await corvo::sleep_for(1ms);
  }
  const auto delivered = std::chrono::steady_clock::now();
  for (auto& f : check_delivery(clients, log)) {
    failures.push_back(std::move(f));
  }
  if (log.unheard_count() != 0) {
    failures.push_back(std::to_string(log.unheard_count()) + " messages had no subscriber");
  }
  const auto frames = log.heard_count() * (s.clients / s.rooms);
  std::cout << std::fixed << std::setprecision(2) << "fan-out: " << log.heard_count()
            << " messages -> " << frames << " frames in "
            << std::chrono::duration<double, std::milli>(delivered - started).count()
            << " ms (publishing took "
            << std::chrono::duration<double, std::milli>(published - started).count()
            << " ms); latency publish->client p50 " << latency_percentile_ms(clients, 0.5)
            << " ms, p99 " << latency_percentile_ms(clients, 0.99) << " ms" << std::endl;

  // 3. A slow consumer: a client with a small receive buffer that stops reading, beside a
  //    fast one in the same room. Enough bytes to fill its socket and its outbox.
  const std::size_t padding = 16 * 1024;
  const std::size_t slow_messages =
      max_send_buffer() / padding + server.options().client_queue + 100;
  client_list fast;
  fast.push_back(std::make_unique<room_client>(ex, "127.0.0.1", server.port(), "slowpoke"));
  room_client slow(ex, "127.0.0.1", server.port(), "slowpoke", 4096);
  co_await fast.front()->join();
  co_await slow.join();
  co_await listen_all(fast, readers);
  const auto before = server.stats();
  publish_log slow_log;
  // Paced by the fast client (each message once it has the previous one): it keeps up.
  std::string slow_room = "slowpoke";  // named: GCC 12 (DESIGN §9)
  if (!co_await publish_paced(redis, slow_room, slow_messages, command, padding, *fast.front(),
                              slow_log, 30s)) {
    failures.push_back("the fast client of the slow-consumer room fell behind");
  }
  for (auto& f : check_delivery(fast, slow_log)) {
    failures.push_back("slow-consumer room, the fast " + f);
  }
  const auto after = server.stats();
  const auto dropped = after.dropped - before.dropped;
  const auto kicked = after.slow_disconnects - before.slow_disconnects;
  std::cout << "slow consumer (" << to_string(server.options().policy) << ", client_queue "
            << server.options().client_queue << "): " << slow_messages << " messages of "
            << padding / 1024 << " KiB; the fast client got " << fast.front()->seqs().size()
            << " in order; the slow client lost " << dropped << " frames, disconnected: " << kicked
            << std::endl;
  if (server.options().policy == slow_policy::drop_oldest ? dropped == 0 : kicked != 1) {
    failures.push_back("the slow-consumer policy did not act");
  }
  slow.close();
  for (const auto& c : clients) {
    c->close();
  }
  fast.front()->close();
  co_await readers.join();

  std::cout << "server stats: " << server.stats_json() << std::endl;
  for (const auto& f : failures) {
    std::cout << "FAILED: " << f << std::endl;
  }
  if (!failures.empty()) {
    co_return 1;
  }
  std::cout << "OK live_fanout: " << s.clients << " clients in " << s.rooms
            << " rooms each received exactly their room's " << s.messages
            << " messages in order; the slow consumer was "
            << (server.options().policy == slow_policy::drop_oldest ? "dropped from"
                                                                    : "disconnected")
            << ", the fast one got all " << slow_messages << std::endl;
  co_return 0;
}

// The demo on the app's loop: its verdict, then the app's shutdown.
asio::awaitable<void> run_demo(health::app& app, fanout_server& server, corvo::redis::client& redis,
                               settings s, std::optional<int>& verdict) {
  try {
    verdict = co_await demo(server, redis, s);
  } catch (const std::exception& e) {
    std::cout << "FAILED: " << e.what() << std::endl;
    verdict = 1;
  }
  app.request_stop();
}

int run_program(const settings& s) {
  auto cfg = s.config_file.empty() ? corvo::config::from_string(default_config(s), "built-in")
                                   : corvo::config::from_file(s.config_file);
  cfg.apply_environment();
  const auto redis_config = corvo::redis::client_config::from(cfg);
  const auto fanout = fanout_options::from(cfg);
  const auto subscriber = corvo::pubsub::subscriber_options::from(cfg);

  health::app app(health::app_options::from(cfg));
  // The app's client: the health probe's (and the demo's publisher); the subscriber has a
  // connection of its own.
  corvo::redis::client redis(app.get_executor(), redis_config);
  fanout_server server(app.get_executor(), redis_config, fanout, subscriber);
  app.add_service("redis", [&redis] { return redis.run(); });
  const auto redis_up = app.add_dependency("redis", health::redis_ping_probe(redis));
  health::reset_when_down(redis_up, redis);  // a hung Redis holds no stop
  server.add_to(app, redis_up);
  print_banner(server);

  std::optional<int> verdict;
  if (s.demo) {
    asio::co_spawn(app.get_executor(), run_demo(app, server, redis, s, verdict),
                   [&app, &verdict](std::exception_ptr e) {
                     if (e) {  // run_demo catches what the demo throws: this is unexpected
                       verdict = 1;
                       app.request_stop();
                     }
                   });
  }
  const auto result = app.run();
  return corvo::samples::exit_code("live_fanout", result, verdict, s.demo);
}

}  // namespace live_fanout

int main(int argc, char** argv) {
  using namespace live_fanout;
  settings s;
  po::options_description options("live_fanout: Redis pub/sub rooms fanned out to WebSockets");
  options.add_options()("help", "this help")("redis", po::value(&s.redis_url),
                                             "Redis URL (redis://host:port); required")(
      "cluster", po::bool_switch(&s.cluster), "--redis is a seed of a Redis Cluster")(
      "listen", po::value(&s.listen)->default_value(s.listen), "host:port (port 0: any free)")(
      "subscription", po::value(&s.subscription)->default_value(s.subscription),
      "pattern (room.*), channel (room.NAME per room) or shard (SSUBSCRIBE per room)")(
      "client-queue", po::value(&s.client_queue)->default_value(s.client_queue),
      "frames queued per client at most")("slow-policy",
                                          po::value(&s.slow_policy)->default_value(s.slow_policy),
                                          "drop_oldest or disconnect")(
      "config", po::value(&s.config_file), "configuration file (JSON) instead of the built-in one")(
      "print-config", "print the built-in configuration and exit")(
      "demo", po::bool_switch(&s.demo), "run clients and checks in this process, then exit")(
      "clients", po::value(&s.clients)->default_value(s.clients), "--demo: WebSocket clients")(
      "rooms", po::value(&s.rooms)->default_value(s.rooms), "--demo: rooms")(
      "messages", po::value(&s.messages)->default_value(s.messages), "--demo: messages per room");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "live_fanout: " << e.what() << "\n" << options;
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
    std::cerr << "live_fanout: --redis or --config is required\n" << options;
    return 2;
  }
  if (s.rooms == 0 || s.clients < s.rooms || s.clients % s.rooms != 0) {
    std::cerr << "live_fanout: --clients must be a positive multiple of --rooms\n";
    return 2;
  }
  return corvo::samples::guarded_main("live_fanout", [&] { return run_program(s); });
}
