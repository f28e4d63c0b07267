// samples/live_fanout's serve mode, run as a user would: the `live_fanout` program (its
// corvo::health::app: the WebSocket service, the Redis client, the subscriber component under
// the Redis PING probe) in a process of its own, 50 WebSocket clients in 5 rooms connected to
// it from this test, and redis-server killed (SIGKILL) and started again under it.
//
// Asserted, exactly:
// - before the kill, every message reaches every client of its room, in order;
// - the kill stops the subscriber component (the monitor saw Redis down: one stop), no client
//   is disconnected, and a client that joins meanwhile gets no joined frame;
// - after the restart the component runs again (a second start, a second subscriber), which
//   subscribes every room again (the late client's too, whose join then completes);
// - every message whose PUBLISH answered a receiver reaches every client of its room exactly
//   once and in publish order, every other one reaches nobody; nothing is dropped;
// - SIGTERM ends the program with exit status 0.
#include <sys/wait.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <fstream>
#include <http/load.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "room_client.hpp"
#include "support/child_process.hpp"
#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/temp_dir.hpp"
#include "traffic.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace redis = corvo::redis;
using namespace live_fanout;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> rooms{"lobby", "sports", "music", "news", "tech"};
constexpr std::size_t per_room = 10;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The program's port, from its banner "live_fanout: ws://127.0.0.1:PORT/rooms/NAME".
std::uint16_t wait_for_port(corvo::test::child_process& program, const std::filesystem::path& log) {
  static const std::regex banner(R"(live_fanout: ws://127\.0\.0\.1:(\d+)/rooms/)");
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < until) {
    std::smatch match;
    const auto text = read_file(log);
    if (std::regex_search(text, match, banner)) {
      return static_cast<std::uint16_t>(std::stoi(match[1]));
    }
    BOOST_REQUIRE_MESSAGE(program.running(), "live_fanout exited:\n" << text);
    std::this_thread::sleep_for(20ms);
  }
  BOOST_FAIL("live_fanout did not start:\n" << read_file(log));
  return 0;
}

asio::awaitable<json::object> stats(std::uint16_t port) {
  auto [status, body] = co_await corvo::samples::http::call(port, "GET", "/stats");
  BOOST_REQUIRE_EQUAL(status, 200);
  co_return json::parse(body).as_object();
}

std::int64_t number(const json::object& o, std::string_view key) {
  return o.at(key).to_number<std::int64_t>();
}

// Polls /stats until `done` holds; fails the test with the last answer after `limit`.
asio::awaitable<json::object> wait_for_stats(std::uint16_t port,
                                             std::function<bool(const json::object&)> done,
                                             const std::string& what,
                                             std::chrono::seconds limit = 30s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto s = co_await stats(port);
    if (done(s)) {
      co_return s;
    }
    BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < until,
                          what << ": " << json::serialize(s));
    co_await corvo::sleep_for(10ms);
  }
}

// What the scenario leaves behind; the clients live here so that, after a failed assertion,
// their reading coroutines (cancelled with their task groups) never outlive them.
struct serve_run {
  client_list clients;
  client_list late;  // the client that joins while Redis is down
  bool late_joined = false;
  publish_log log;
  std::vector<std::string> failures;
  std::size_t ended_early = 0;
  bool late_joined_while_down = false;
  json::object down;   // /stats while Redis was down
  json::object after;  // /stats at the end
};

asio::awaitable<void> serve_scenario(corvo::test::redis_server& redis_server, std::uint16_t port,
                                     redis::client& publisher, publish_command command,
                                     serve_run& out) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group background(ex);
  co_await background.spawn(publisher.run());
  corvo::task_group readers(ex, {.on_failure = corvo::failure_policy::collect_errors});
  auto& clients = out.clients;
  for (std::size_t i = 0; i < per_room * rooms.size(); ++i) {
    clients.push_back(
        std::make_unique<room_client>(ex, "127.0.0.1", port, rooms[i % rooms.size()]));
    co_await clients.back()->join();
  }
  for (const auto& c : clients) {
    auto reading = c->listen();
    co_await readers.spawn(std::move(reading));
  }
  auto delivered = [&](const client_list& cs) {
    return corvo::test::eventually([&] { return all_delivered(cs, out.log); }, 30s);
  };

  // Redis up: every message heard and delivered.
  co_await publish_messages(publisher, rooms, 40, command, 0, out.log);
  BOOST_TEST(out.log.unheard_count() == 0u);
  BOOST_TEST(co_await delivered(clients));

  // SIGKILL: the monitor sees Redis down and the subscriber component is stopped.
  redis_server.kill();
  out.down = co_await wait_for_stats(
      port,
      [](const json::object& s) {
        const auto& sup = s.at("supervision").as_object();
        return number(sup, "stops") == 1 && sup.at("state").as_string() == "waiting";
      },
      "the subscriber was not stopped");
  // A client that joins now waits for a subscriber: its connection is open, no joined frame.
  auto& late = out.late;
  late.push_back(std::make_unique<room_client>(ex, "127.0.0.1", port, "late"));
  corvo::task_group joining(ex);
  auto* late_client = late.front().get();
  co_await joining.spawn([](room_client* c, bool* joined) -> asio::awaitable<void> {
    co_await c->join();
    *joined = true;
  }(late_client, &out.late_joined));
  co_await wait_for_stats(
      port, [](const json::object& s) { return number(s, "joining") == 1; },
      "the late client's join did not reach the server");
  out.late_joined_while_down = out.late_joined;

  // Redis back: a second start; the new subscriber subscribes every room again.
  redis_server.start();
  redis_server.wait_ready();
  co_await wait_for_stats(
      port,
      [](const json::object& s) {
        const auto& sup = s.at("supervision").as_object();
        return number(sup, "starts") == 2 && sup.at("state").as_string() == "running";
      },
      "the subscriber did not start again");
  co_await joining.join();
  BOOST_TEST(out.late_joined);
  auto reading = late_client->listen();
  co_await readers.spawn(std::move(reading));
  std::vector<std::string> all_rooms = rooms;
  all_rooms.push_back("late");
  BOOST_TEST(co_await publish_until_heard(publisher, all_rooms, command, out.log, 5ms, 30s));
  const auto heard_before = out.log.heard_count();
  const auto unheard_before = out.log.unheard_count();
  co_await publish_messages(publisher, all_rooms, 40, command, 0, out.log);
  BOOST_TEST(out.log.heard_count() == heard_before + 40 * all_rooms.size());
  BOOST_TEST(out.log.unheard_count() == unheard_before);
  BOOST_TEST(co_await delivered(clients));
  BOOST_TEST(co_await delivered(late));

  for (const auto& c : clients) {
    out.ended_early += c->ended() ? 1 : 0;
  }
  out.failures = check_delivery(clients, out.log);
  for (auto& f : check_delivery(late, out.log)) {
    out.failures.push_back("late " + f);
  }
  out.after = co_await stats(port);
  for (const auto& c : clients) {
    c->close();
  }
  late_client->close();
  co_await readers.join();
  publisher.cancel();
  background.cancel();
  try {
    co_await background.join();
  } catch (const boost::system::system_error&) {
  }
}

void run_serve_case(const std::string& subscription) {
  corvo::test::redis_server redis_server;
  corvo::test::temp_dir dir("live-fanout-serve");
  // Generous probe bounds: a slow PING on a loaded machine must not stop the subscriber.
  const json::object config = {
      {"redis", {{"url", redis_server.url()}}},
      {"live_fanout",
       {{"listen", "127.0.0.1:0"}, {"subscription", subscription}, {"client_queue", 4096}}},
      {"health",
       {{"probe_interval", "100ms"},
        {"probe_timeout", "2s"},
        {"restart_initial", "20ms"},
        {"restart_max", "200ms"}}}};
  const auto config_path = dir.path() / "live_fanout.json";
  std::ofstream(config_path) << json::serialize(config);
  const auto log = dir.path() / "live_fanout.log";
  corvo::test::child_process program({CORVO_LIVE_FANOUT_PATH, "--config", config_path.string()},
                                     dir.path(), log);
  const auto port = wait_for_port(program, log);

  asio::io_context ctx;
  serve_run run;
  redis::client publisher(ctx.get_executor(), redis::client_config::from_url(redis_server.url()));
  const auto command =
      subscription == "shard" ? publish_command::spublish : publish_command::publish;
  corvo::test::run(ctx, serve_scenario(redis_server, port, publisher, command, run),
                   [&publisher] { publisher.cancel(); });

  for (const auto& f : run.failures) {
    BOOST_ERROR(f);
  }
  BOOST_TEST(run.failures.empty());
  BOOST_TEST(run.ended_early == 0u);
  BOOST_TEST(!run.late_joined_while_down);
  // While down: every client still connected.
  BOOST_TEST(number(run.down, "clients") == 50);
  // 40 before, 40 after, plus the first heard after the restart, per room (the late one: 41+).
  BOOST_TEST(run.log.heard_count() >= 81 * rooms.size() + 41);
  const auto& after = run.after;
  BOOST_TEST(number(after, "clients") == 51);
  BOOST_TEST(number(after, "dropped") == 0);
  BOOST_TEST(number(after, "slow_disconnects") == 0);
  BOOST_TEST(number(after.at("subscriber").as_object(), "dropped") == 0);
  BOOST_TEST(number(after, "subscriber_runs") == 2);
  const auto& sup = after.at("supervision").as_object();
  BOOST_TEST(number(sup, "starts") == 2);
  BOOST_TEST(number(sup, "stops") == 1);
  BOOST_TEST(number(sup, "failures") == 0);
  BOOST_TEST(number(sup, "stop_overruns") == 0);  // stopped within health.stop_timeout (1 s)
  // Every heard message written once to each client of its room.
  const auto late_heard = run.log.heard.count("late") ? run.log.heard.at("late").size() : 0;
  BOOST_TEST(
      number(after, "written") ==
      static_cast<std::int64_t>((run.log.heard_count() - late_heard) * per_room + late_heard));
  BOOST_TEST_MESSAGE(subscription << ": lost while resubscribing (PUBLISH answered 0): "
                                  << run.log.unheard_count() << "; " << json::serialize(after));

  program.kill(SIGTERM);
  const auto status = program.wait_for(30s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "live_fanout did not stop on SIGTERM");
  BOOST_TEST((WIFEXITED(*status) && WEXITSTATUS(*status) == 0),
             "exit status " << *status << "\n"
                            << corvo::test::tail_of_file(log, 40));
}

}  // namespace

BOOST_AUTO_TEST_CASE(channel_rooms_served_across_a_redis_kill_and_restart) {
  run_serve_case("channel");
}

BOOST_AUTO_TEST_CASE(pattern_rooms_served_across_a_redis_kill_and_restart) {
  run_serve_case("pattern");
}
