// samples/live_fanout end to end: the fan-out server with real WebSocket clients over a real
// redis-server (restarted mid-run) and a real Redis Cluster.
//
// What is asserted across the restart (pub/sub keeps nothing; see traffic.hpp): every message
// whose PUBLISH answered a receiver reaches every client of its room exactly once, in publish
// order; a message answered with 0 receivers (published after Redis came back but before the
// server's subscriber had resubscribed) reaches no client; all messages published before the
// restart and after the first heard one are heard. No client is disconnected by the restart.
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/task_group.hpp>
#include <fstream>

#include "fanout_server.hpp"
#include "room_client.hpp"
#include "support/eventually.hpp"
#include "support/redis_cluster.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "traffic.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace live_fanout;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> rooms{"lobby", "sports", "music", "news", "tech"};

asio::awaitable<client_list> join_clients(const fanout_server& server, std::size_t per_room,
                                          corvo::task_group& readers) {
  auto ex = co_await asio::this_coro::executor;
  client_list clients;
  for (std::size_t i = 0; i < per_room * rooms.size(); ++i) {
    clients.push_back(
        std::make_unique<room_client>(ex, "127.0.0.1", server.port(), rooms[i % rooms.size()]));
    co_await clients.back()->join();
  }
  for (const auto& c : clients) {
    auto reading = c->listen();
    co_await readers.spawn(std::move(reading));
  }
  co_return clients;
}

asio::awaitable<bool> wait_delivered(const client_list& clients, const publish_log& log) {
  co_return co_await corvo::test::eventually([&] { return all_delivered(clients, log); }, 30s);
}

void close_all(const client_list& clients) {
  for (const auto& c : clients) {
    c->close();
  }
}

struct restart_run {
  publish_log log;
  fanout_stats stats;
  std::vector<std::string> failures;
  std::size_t ended_early = 0;  // clients whose connection ended before the test closed it
};

asio::awaitable<void> restart_scenario(corvo::test::redis_server& redis_server,
                                       fanout_server& server, redis::client& publisher,
                                       publish_command command, restart_run& out) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group background(ex);
  co_await background.spawn(server.run());
  co_await background.spawn(publisher.run());
  corvo::task_group readers(ex, {.on_failure = corvo::failure_policy::collect_errors});
  const client_list clients = co_await join_clients(server, 10, readers);

  // Before the restart: every message heard.
  co_await publish_messages(publisher, rooms, 40, command, 0, out.log);
  BOOST_TEST(out.log.unheard_count() == 0u);
  BOOST_TEST(co_await wait_delivered(clients, out.log));

  // Restart (SIGTERM, start again on the same port); then publish until the server hears
  // each room again, then more.
  redis_server.restart();
  BOOST_TEST(co_await publish_until_heard(publisher, rooms, command, out.log, 5ms, 30s));
  const auto heard_before_last_round = out.log.heard_count();
  const auto unheard_before_last_round = out.log.unheard_count();
  co_await publish_messages(publisher, rooms, 40, command, 0, out.log);
  BOOST_TEST(out.log.heard_count() == heard_before_last_round + 40 * rooms.size());
  BOOST_TEST(out.log.unheard_count() == unheard_before_last_round);
  BOOST_TEST(co_await wait_delivered(clients, out.log));

  for (const auto& c : clients) {
    out.ended_early += c->ended() ? 1 : 0;
  }
  out.failures = check_delivery(clients, out.log);
  out.stats = server.stats();
  close_all(clients);
  co_await readers.join();
  publisher.cancel();
  background.cancel();
  try {
    co_await background.join();
  } catch (const boost::system::system_error&) {
  }
}

void run_restart_case(subscription_mode mode) {
  corvo::test::redis_server redis_server;
  asio::io_context ctx;
  fanout_options options;
  options.subscription = mode;
  options.client_queue = 4096;  // nobody is slow here: nothing may be dropped
  const auto cfg = redis::client_config::from_url(redis_server.url());
  fanout_server server(ctx.get_executor(), cfg, options);
  redis::client publisher(ctx.get_executor(), cfg);
  restart_run run;
  const auto command =
      mode == subscription_mode::shard ? publish_command::spublish : publish_command::publish;
  corvo::test::run(ctx, restart_scenario(redis_server, server, publisher, command, run));

  for (const auto& f : run.failures) {
    BOOST_ERROR(f);
  }
  BOOST_TEST(run.failures.empty());
  BOOST_TEST(run.ended_early == 0u);
  // 80 heard per room at least (40 before, 40 after, plus the first heard after the restart).
  BOOST_TEST(run.log.heard_count() >= 81 * rooms.size());
  BOOST_TEST(run.stats.clients == 50u);
  BOOST_TEST(run.stats.dropped == 0u);
  BOOST_TEST(run.stats.slow_disconnects == 0u);
  BOOST_TEST(run.stats.written == run.log.heard_count() * 10);
  // The restart was survived by resubscribing: one pattern, or one channel per room.
  const std::uint64_t names = mode == subscription_mode::pattern ? 1 : rooms.size();
  BOOST_TEST(run.stats.subscriber.resubscriptions == names);
  BOOST_TEST_MESSAGE("lost while resubscribing (PUBLISH answered 0): " << run.log.unheard_count());
}

// ---- slow consumers -----------------------------------------------------------------------

std::size_t max_send_buffer() {
  std::ifstream in("/proc/sys/net/ipv4/tcp_wmem");
  std::size_t low = 0, initial = 0, high = 4u << 20;
  in >> low >> initial >> high;
  return high;
}

constexpr std::size_t big_frame = 64 * 1024;

struct slow_run {
  publish_log log;
  std::size_t messages = 0;
  std::vector<std::string> failures;
  fanout_stats stats;
};

asio::awaitable<void> slow_scenario(fanout_server& server, redis::client& publisher,
                                    slow_run& out) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group background(ex);
  co_await background.spawn(server.run());
  co_await background.spawn(publisher.run());
  corvo::task_group readers(ex, {.on_failure = corvo::failure_policy::collect_errors});
  client_list fast;
  fast.push_back(std::make_unique<room_client>(ex, "127.0.0.1", server.port(), "slowpoke"));
  room_client slow(ex, "127.0.0.1", server.port(), "slowpoke", 4096);
  co_await fast.front()->join();
  co_await slow.join();  // and never reads again
  auto reading = fast.front()->listen();
  co_await readers.spawn(std::move(reading));

  // More bytes than the slow client's socket buffers and outbox can hold, by 100 frames.
  out.messages = max_send_buffer() / big_frame + server.options().client_queue + 100;
  // Paced by the fast client: it never has more than one frame queued.
  std::string room = "slowpoke";  // named: GCC 12 (DESIGN §9)
  BOOST_TEST(co_await publish_paced(publisher, room, out.messages, publish_command::publish,
                                    big_frame, *fast.front(), out.log, 30s));
  BOOST_TEST(out.log.unheard_count() == 0u);
  out.failures = check_delivery(fast, out.log);
  if (server.options().policy == slow_policy::disconnect) {
    BOOST_TEST(co_await corvo::test::eventually([&] { return server.stats().clients == 1; }, 30s));
  }
  out.stats = server.stats();
  slow.close();
  close_all(fast);
  co_await readers.join();
  publisher.cancel();
  background.cancel();
  try {
    co_await background.join();
  } catch (const boost::system::system_error&) {
  }
}

slow_run run_slow_case(slow_policy policy) {
  corvo::test::redis_server redis_server;
  asio::io_context ctx;
  fanout_options options;
  options.client_queue = 16;
  options.policy = policy;
  const auto cfg = redis::client_config::from_url(redis_server.url());
  fanout_server server(ctx.get_executor(), cfg, options);
  redis::client publisher(ctx.get_executor(), cfg);
  slow_run run;
  corvo::test::run(ctx, slow_scenario(server, publisher, run));
  for (const auto& f : run.failures) {
    BOOST_ERROR("the fast " << f);
  }
  BOOST_TEST(run.stats.subscriber.dropped == 0u);  // the subscriber itself kept up
  return run;
}

// ---- cluster ------------------------------------------------------------------------------

asio::awaitable<void> cluster_scenario(fanout_server& server, redis::client& publisher,
                                       publish_command command, std::vector<std::string>& failures,
                                       publish_log& log) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group background(ex);
  co_await background.spawn(server.run());
  co_await background.spawn(publisher.run());
  corvo::task_group readers(ex, {.on_failure = corvo::failure_policy::collect_errors});
  const client_list clients = co_await join_clients(server, 2, readers);
  co_await publish_messages(publisher, rooms, 50, command, 0, log);
  if (command == publish_command::publish) {
    // A cluster's PUBLISH counts only the subscribers of the node it ran on, and the server
    // may listen on another master: with no outage here, every message is expected.
    for (const auto& room : rooms) {
      auto& expected = log.heard[room];
      expected.clear();
      for (std::uint64_t seq = 0; seq < log.next_seq[room]; ++seq) {
        expected.push_back(seq);
      }
    }
    log.unheard.clear();
  }
  BOOST_TEST(co_await wait_delivered(clients, log));
  failures = check_delivery(clients, log);
  close_all(clients);
  co_await readers.join();
  publisher.cancel();
  background.cancel();
  try {
    co_await background.join();
  } catch (const boost::system::system_error&) {
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(pattern_subscription_rooms_survive_a_redis_restart) {
  run_restart_case(subscription_mode::pattern);
}

BOOST_AUTO_TEST_CASE(channel_subscription_rooms_survive_a_redis_restart) {
  run_restart_case(subscription_mode::channel);
}

BOOST_AUTO_TEST_CASE(shard_subscription_rooms_survive_a_redis_restart) {
  run_restart_case(subscription_mode::shard);
}

BOOST_AUTO_TEST_CASE(a_slow_client_loses_its_oldest_frames_and_the_room_loses_nothing) {
  const auto run = run_slow_case(slow_policy::drop_oldest);
  // The slow client's socket and outbox hold at most max_send_buffer() / big_frame + 16
  // frames (+ the one being written): of the 100 frames beyond that, all but a few drop.
  BOOST_TEST(run.stats.dropped >= 90u);
  BOOST_TEST(run.stats.slow_disconnects == 0u);
  BOOST_TEST(run.stats.clients == 2u);
}

BOOST_AUTO_TEST_CASE(a_slow_client_is_disconnected_and_the_room_loses_nothing) {
  const auto run = run_slow_case(slow_policy::disconnect);
  BOOST_TEST(run.stats.slow_disconnects == 1u);
  BOOST_TEST(run.stats.dropped == 0u);
  BOOST_TEST(run.stats.clients == 1u);
}

BOOST_AUTO_TEST_CASE(shard_channels_and_a_pattern_fan_out_on_a_cluster) {
  corvo::test::redis_cluster cluster;
  auto cfg = redis::client_config::from_cluster_seeds(cluster.seed_urls());
  for (const auto mode : {subscription_mode::shard, subscription_mode::pattern}) {
    BOOST_TEST_CONTEXT("subscription " << to_string(mode)) {
      asio::io_context ctx;
      fanout_options options;
      options.subscription = mode;
      fanout_server server(ctx.get_executor(), cfg, options);
      redis::client publisher(ctx.get_executor(), cfg);
      std::vector<std::string> failures;
      publish_log log;
      const auto command =
          mode == subscription_mode::shard ? publish_command::spublish : publish_command::publish;
      corvo::test::run(ctx, cluster_scenario(server, publisher, command, failures, log));
      for (const auto& f : failures) {
        BOOST_ERROR(f);
      }
      BOOST_TEST(failures.empty());
      if (mode == subscription_mode::shard) {
        // SPUBLISH counts every subscriber of the shard channel: all heard.
        BOOST_TEST(log.heard_count() == 50 * rooms.size());
      }
    }
  }
}
