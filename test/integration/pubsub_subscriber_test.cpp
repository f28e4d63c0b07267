// pubsub::subscriber against a real redis-server: fan-out to 100 subscribers in publish
// order, pattern and shard channels, restoration after a server restart (PUBSUB NUMSUB
// proves it), the overflow policies of a subscriber that stops reading (counted exactly,
// memory bounded), the server's output-buffer limit cutting a stalled process, a refused
// subscription (NOPERM) and clean cancellation of receive().
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/pubsub/publish.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <corvo/redis/error.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <corvo/stream/consumer.hpp>
#include <corvo/stream/producer.hpp>
#include <map>

#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace pubsub = corvo::pubsub;
namespace schedule = corvo::schedule;
namespace stream = corvo::stream;
using namespace std::chrono_literals;
using boost::system::error_code;
using corvo::test::eventually;

namespace {

// A subscriber's run() in the background; how it ended is kept for the test.
struct background_run {
  bool done = false;
  error_code ended_with;
};

struct note_end {
  background_run* run;
  void operator()(std::exception_ptr e) const {
    run->done = true;
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const boost::system::system_error& ex) {
        run->ended_with = ex.code();
      } catch (...) {
        run->ended_with = asio::error::fault;
      }
    }
  }
};

struct log_end {
  void operator()(std::exception_ptr e) const {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        BOOST_TEST_MESSAGE("background task ended: " << ex.what());
      }
    }
  }
};

// What one receive() loop saw, per channel: the payloads in arrival order.
struct received_log {
  std::map<std::string, std::vector<std::string>> by_source;
  std::size_t total = 0;
};

// Messages of a pattern subscription are keyed "pattern:channel".
asio::awaitable<void> receive_into(pubsub::subscriber& sub, received_log& log) {
  for (;;) {
    pubsub::message m = co_await sub.receive();
    const std::string key =
        m.kind == pubsub::message_kind::pattern ? m.pattern + ":" + m.channel : m.channel;
    log.by_source[key].push_back(std::move(m.payload));
    ++log.total;
  }
}

std::vector<std::string> numbered(const std::string& prefix, int first, int last) {
  std::vector<std::string> out;
  for (int i = first; i < last; ++i) {
    out.push_back(prefix + std::to_string(i));
  }
  return out;
}

asio::awaitable<void> publish_all(redis::client& publisher, std::string channel,
                                  std::vector<std::string> payloads, bool shard) {
  for (auto& payload : payloads) {
    if (shard) {
      co_await pubsub::spublish(publisher, channel, payload);
    } else {
      co_await pubsub::publish(publisher, channel, payload);
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pubsub_subscriber)

BOOST_AUTO_TEST_CASE(every_message_reaches_every_subscriber_in_publish_order) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_url(server.url());
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), log_end{});

  constexpr int plain_subscribers = 100;
  constexpr int pattern_subscribers = 5;
  constexpr int shard_subscribers = 5;
  constexpr int messages = 200;
  std::vector<std::unique_ptr<pubsub::subscriber>> subs;
  std::vector<received_log> logs(plain_subscribers + pattern_subscribers + shard_subscribers);
  for (std::size_t i = 0; i < logs.size(); ++i) {
    subs.push_back(std::make_unique<pubsub::subscriber>(ctx.get_executor(), cfg));
    asio::co_spawn(ctx, subs.back()->run(), log_end{});
    asio::co_spawn(ctx, receive_into(*subs.back(), logs[i]), log_end{});
  }

  const auto scenario = [&]() -> asio::awaitable<void> {
    for (int i = 0; i < static_cast<int>(subs.size()); ++i) {
      if (i < plain_subscribers) {
        std::vector<std::string> channels{"news", "sport"};
        co_await subs[i]->subscribe(channels);
      } else if (i < plain_subscribers + pattern_subscribers) {
        std::vector<std::string> patterns{"ne*"};
        co_await subs[i]->psubscribe(patterns);
      } else {
        std::vector<std::string> shards{"{feed}"};
        co_await subs[i]->ssubscribe(shards);
      }
    }
    std::vector<std::string> news_channel{"news"};
    auto counts = co_await pubsub::numsub(publisher, news_channel);
    BOOST_TEST(counts["news"] == plain_subscribers);
    std::vector<std::string> feed_channel{"{feed}"};
    auto shard_counts = co_await pubsub::shard_numsub(publisher, feed_channel);
    BOOST_TEST(shard_counts["{feed}"] == shard_subscribers);
    BOOST_TEST(co_await pubsub::numpat(publisher) == 1);  // unique patterns, not subscribers

    // Three publishers interleave on three channels; order holds per channel.
    const auto ex = co_await asio::this_coro::executor;
    int finished = 0;
    const auto count_done = [&finished](std::exception_ptr e) {
      ++finished;
      if (e)
        std::rethrow_exception(e);
    };
    asio::co_spawn(ex, publish_all(publisher, "news", numbered("n", 0, messages), false),
                   count_done);
    asio::co_spawn(ex, publish_all(publisher, "sport", numbered("s", 0, messages), false),
                   count_done);
    asio::co_spawn(ex, publish_all(publisher, "{feed}", numbered("f", 0, messages), true),
                   count_done);
    const std::size_t expected_total = static_cast<std::size_t>(messages) * 2 * plain_subscribers +
                                       messages * pattern_subscribers +
                                       messages * shard_subscribers;
    const bool all = co_await eventually(
        [&] {
          std::size_t total = 0;
          for (auto& log : logs)
            total += log.total;
          return finished == 3 && total == expected_total;
        },
        30s);
    BOOST_REQUIRE(all);
  };
  corvo::test::run(ctx, scenario(), [&] {
    publisher.cancel();
    for (auto& s : subs)
      s->cancel();
  });

  for (int i = 0; i < plain_subscribers; ++i) {
    BOOST_TEST(logs[i].by_source.size() == 2u);
    BOOST_TEST(logs[i].by_source["news"] == numbered("n", 0, messages));
    BOOST_TEST(logs[i].by_source["sport"] == numbered("s", 0, messages));
    BOOST_TEST(subs[i]->stats().received == 2u * messages);
    BOOST_TEST(subs[i]->stats().dropped == 0u);
  }
  for (int i = plain_subscribers; i < plain_subscribers + pattern_subscribers; ++i) {
    BOOST_TEST(logs[i].by_source.size() == 1u);
    BOOST_TEST(logs[i].by_source["ne*:news"] == numbered("n", 0, messages));
  }
  for (int i = plain_subscribers + pattern_subscribers; i < static_cast<int>(subs.size()); ++i) {
    BOOST_TEST(logs[i].by_source.size() == 1u);
    BOOST_TEST(logs[i].by_source["{feed}"] == numbered("f", 0, messages));
  }
}

// The receive() loop is one coroutine among others on one io_context: beside it a scheduler
// fires due tasks and a stream consumer handles entries, all driven at once, and each of
// them sees exactly its own work, once.
BOOST_AUTO_TEST_CASE(a_receive_loop_runs_beside_a_scheduler_and_a_stream_consumer) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_url(server.url());
  redis::client client(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, client.run(), log_end{});
  pubsub::subscriber sub(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, sub.run(), log_end{});
  received_log messages;
  asio::co_spawn(ctx, receive_into(sub, messages), log_end{});

  constexpr int n = 50;
  std::map<std::string, int> fired;    // task id → runs
  std::map<std::string, int> handled;  // entry payload → runs
  schedule::scheduler scheduler(ctx.get_executor(), schedule::scheduler_options{});
  scheduler.handlers().on_task("tick", [&fired](const schedule::claimed_task& c) {
    ++fired[c.work.id];
    return []() -> asio::awaitable<void> { co_return; }();
  });
  asio::cancellation_signal stop_scheduler;
  asio::co_spawn(ctx, scheduler.run(),
                 asio::bind_cancellation_slot(stop_scheduler.slot(), log_end{}));
  stream::consumer_options so;
  so.group = "side";
  so.streams = {"side:events"};
  stream::consumer consumer(client, so);
  asio::cancellation_signal stop_consumer;
  asio::co_spawn(ctx, consumer.run([&handled](const stream::entry& e) -> asio::awaitable<void> {
    ++handled[std::string(e.field("data").value_or(""))];
    co_return;
  }),
                 asio::bind_cancellation_slot(stop_consumer.slot(), log_end{}));

  const auto scenario = [&]() -> asio::awaitable<void> {
    std::vector<std::string> channels{"ticks"};
    co_await sub.subscribe(channels);
    stream::producer out(client);
    for (int i = 0; i < n; ++i) {
      // Named arguments, no temporaries in the co_await expressions (GCC 12).
      const boost::json::value payload = i;
      std::string id = "t" + std::to_string(i);
      std::string type = "tick";
      co_await scheduler.schedule(id, type, payload,
                                  schedule::now() + std::chrono::milliseconds(i));
      std::vector<std::string> fields{"data", "e" + std::to_string(i)};
      std::string key = "side:events";
      co_await out.append_fields(key, fields);
      std::string channel = "ticks";
      std::string text = "m" + std::to_string(i);
      co_await pubsub::publish(client, channel, text);
    }
    BOOST_REQUIRE(co_await eventually(
        [&] {
          return fired.size() == n && handled.size() == n && messages.total == std::size_t{n};
        },
        30s));
  };
  corvo::test::run(ctx, scenario(), [&] {
    stop_scheduler.emit(asio::cancellation_type::terminal);
    stop_consumer.emit(asio::cancellation_type::terminal);
    sub.cancel();
    client.cancel();
  });
  BOOST_TEST(messages.by_source["ticks"] == numbered("m", 0, n));
  for (int i = 0; i < n; ++i) {
    BOOST_TEST(fired["t" + std::to_string(i)] == 1);
    BOOST_TEST(handled["e" + std::to_string(i)] == 1);
  }
}

BOOST_AUTO_TEST_CASE(subscriptions_come_back_after_a_server_restart) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_url(server.url());
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), log_end{});
  pubsub::subscriber sub(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, sub.run(), log_end{});
  received_log log;
  asio::co_spawn(ctx, receive_into(sub, log), log_end{});

  const auto scenario = [&]() -> asio::awaitable<void> {
    std::vector<std::string> channels{"orders", "payments"};
    std::vector<std::string> patterns{"audit.*"};
    std::vector<std::string> shards{"{s}events"};
    co_await sub.subscribe(channels);
    co_await sub.psubscribe(patterns);
    co_await sub.ssubscribe(shards);
    co_await pubsub::publish(publisher, "orders", "before");
    BOOST_REQUIRE(co_await eventually([&] { return log.total == 1; }, 10s));
    BOOST_TEST(sub.stats().resubscriptions == 0u);

    server.restart();  // blocks the loop while the server restarts: both connections drop

    // The connection restores what the server had confirmed; NUMSUB proves it.
    bool back = false;
    for (int i = 0; i < 500 && !back; ++i) {
      try {
        std::vector<std::string> asked{"orders", "payments"};
        auto counts = co_await pubsub::numsub(publisher, asked);
        std::vector<std::string> shard_asked{"{s}events"};
        auto shard_counts = co_await pubsub::shard_numsub(publisher, shard_asked);
        const auto patterns_now = co_await pubsub::numpat(publisher);
        back = counts["orders"] == 1 && counts["payments"] == 1 && shard_counts["{s}events"] == 1 &&
               patterns_now == 1;
      } catch (const boost::system::system_error&) {
      }
      if (!back)
        co_await corvo::sleep_for(20ms);
    }
    BOOST_REQUIRE(back);
    // Four names restored on each reconnect, counted once each.
    BOOST_REQUIRE(co_await eventually([&] { return sub.stats().resubscriptions >= 4; }, 10s));
    const auto reconnects = sub.client().standalone()->stats().connects - 1;
    BOOST_TEST(reconnects >= 1u);
    BOOST_TEST(sub.stats().resubscriptions == 4 * reconnects);

    co_await pubsub::publish(publisher, "orders", "after");
    co_await pubsub::publish(publisher, "audit.login", "who");
    co_await pubsub::spublish(publisher, "{s}events", "shard");
    BOOST_REQUIRE(co_await eventually([&] { return log.total == 4; }, 10s));
  };
  corvo::test::run(ctx, scenario(), [&] {
    publisher.cancel();
    sub.cancel();
  });
  const std::vector<std::string> orders{"before", "after"};
  BOOST_TEST(log.by_source["orders"] == orders);
  BOOST_TEST(log.by_source["audit.*:audit.login"] == std::vector<std::string>{"who"});
  BOOST_TEST(log.by_source["{s}events"] == std::vector<std::string>{"shard"});
}

// A subscriber whose owner never calls receive(): 1,000 messages into a buffer of 100.
struct overflow_case {
  pubsub::overflow_policy policy;
  std::size_t max_bytes = 0;
};

struct overflow_outcome {
  pubsub::subscriber_stats stats;
  std::vector<std::string> buffered;
  error_code receive_ended_with;
  background_run run;
};

asio::awaitable<void> stop_reading_then_drain(pubsub::subscriber& sub, redis::client& publisher,
                                              overflow_outcome& out, int messages) {
  std::vector<std::string> channels{"firehose"};
  co_await sub.subscribe(channels);
  const std::string padding(90, 'x');
  for (int i = 0; i < messages; ++i) {
    co_await pubsub::publish(publisher, "firehose", std::to_string(i) + ":" + padding);
  }
  // Everything published was read off the connection (or the subscriber stopped).
  BOOST_REQUIRE(co_await eventually(
      [&] { return sub.stats().received == static_cast<std::uint64_t>(messages) || out.run.done; },
      20s));
  out.stats = sub.stats();
  for (;;) {
    try {
      auto m = co_await corvo::with_timeout(sub.receive(), 2s);
      out.buffered.push_back(m.payload.substr(0, m.payload.find(':')));
    } catch (const boost::system::system_error& e) {
      out.receive_ended_with = e.code();
      break;
    }
  }
}

overflow_outcome run_overflow_case(const overflow_case& c, int messages = 1000) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_url(server.url());
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), log_end{});
  pubsub::subscriber_options options;
  options.buffer.max_messages = 100;
  options.buffer.max_bytes = c.max_bytes;
  options.overflow = c.policy;
  pubsub::subscriber sub(ctx.get_executor(), cfg, options);
  overflow_outcome out;
  asio::co_spawn(ctx, sub.run(), note_end{&out.run});
  corvo::test::run(ctx, stop_reading_then_drain(sub, publisher, out, messages), [&] {
    publisher.cancel();
    sub.cancel();
  });
  return out;
}

BOOST_AUTO_TEST_CASE(drop_oldest_keeps_the_newest_messages_and_counts_the_rest) {
  const auto out = run_overflow_case({pubsub::overflow_policy::drop_oldest});
  BOOST_TEST(out.stats.received == 1000u);
  BOOST_TEST(out.stats.dropped == 900u);
  BOOST_TEST(out.stats.buffered == 100u);
  BOOST_TEST(out.stats.buffered_bytes == 100u * (8 + 3 + 1 + 90));  // "firehose" + "9xx:" + pad
  BOOST_TEST(out.stats.oldest_age > std::chrono::steady_clock::duration::zero());
  BOOST_TEST(out.buffered == numbered("", 900, 1000));
  BOOST_TEST(out.receive_ended_with == error_code(corvo::error::timed_out));
}

BOOST_AUTO_TEST_CASE(drop_newest_keeps_the_oldest_messages_and_counts_the_rest) {
  const auto out = run_overflow_case({pubsub::overflow_policy::drop_newest});
  BOOST_TEST(out.stats.received == 1000u);
  BOOST_TEST(out.stats.dropped == 900u);
  BOOST_TEST(out.buffered == numbered("", 0, 100));
}

BOOST_AUTO_TEST_CASE(a_byte_bound_limits_memory_below_the_message_bound) {
  // Messages of 8 + 103 or 104 bytes (channel + "NNN:" + 90) into 2,000 bytes: the newest
  // 18 fit (18 * 104 = 1,872; 19 would be 1,976 + ... > 2,000 only with 3-digit numbers).
  const auto out = run_overflow_case({pubsub::overflow_policy::drop_oldest, 2000});
  BOOST_TEST(out.stats.received == 1000u);
  BOOST_TEST(out.stats.buffered_bytes <= 2000u);
  BOOST_TEST(out.stats.dropped + out.stats.buffered == 1000u);
  BOOST_TEST(out.stats.buffered == 2000u / (8 + 3 + 1 + 90));
  BOOST_TEST(out.buffered == numbered("", 1000 - 2000 / (8 + 3 + 1 + 90), 1000));
}

BOOST_AUTO_TEST_CASE(disconnect_stops_the_subscriber_with_buffer_overflow) {
  const auto out = run_overflow_case({pubsub::overflow_policy::disconnect});
  BOOST_TEST(out.run.done);
  BOOST_TEST(out.run.ended_with == error_code(pubsub::error::buffer_overflow));
  BOOST_TEST(out.stats.received == 101u);  // the 101st did not fit
  BOOST_TEST(out.stats.dropped == 0u);
  // The buffered messages are still handed out, then the overflow is reported.
  BOOST_TEST(out.buffered == numbered("", 0, 100));
  BOOST_TEST(out.receive_ended_with == error_code(pubsub::error::buffer_overflow));
}

namespace {

// Publishes messages "stall-N:" + 64 KiB on "feed" until PUBLISH reports no receiver: the
// server has cut the subscriber. Returns how many messages reached it (a receiver count of 1).
asio::awaitable<int> publish_until_no_receiver(redis::client& flood) {
  const std::string padding(64 * 1024, 'x');
  for (int i = 0; i < 100'000; ++i) {
    std::string payload = "stall-" + std::to_string(i) + ":" + padding;
    const auto receivers = co_await pubsub::publish(flood, "feed", std::move(payload));
    if (receivers == 0) {
      co_return i;
    }
  }
  co_return -1;
}

// The same from a client of its own io_context, so the caller's loop stays blocked meanwhile.
int flood_until_cut(const std::string& url) {
  asio::io_context flood_ctx;
  redis::client flood(flood_ctx.get_executor(), redis::client_config::from_url(url));
  asio::co_spawn(flood_ctx, flood.run(), log_end{});
  return corvo::test::run(flood_ctx, publish_until_no_receiver(flood), [&] { flood.cancel(); });
}

}  // namespace

// The server's own limit (docs/pubsub.md): a process that stops reading its socket (here its
// io_context is blocked) is cut by `client-output-buffer-limit pubsub` once the server holds
// more than the hard limit for it. The subscriber reconnects and subscribes again (exactly
// one resubscription); what it had read before the cut arrives in order; the messages the
// server threw away are lost without a `dropped` count, since the subscriber never saw them.
BOOST_AUTO_TEST_CASE(a_stalled_process_is_cut_by_the_server_limit_and_subscribes_again) {
  corvo::test::redis_server server;
  server.cli("CONFIG", "SET", "client-output-buffer-limit", "pubsub 256kb 0 0");
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_url(server.url());
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), log_end{});
  pubsub::subscriber_options options;
  options.buffer.max_messages = 100'000;  // the subscriber's own buffer never drops here
  pubsub::subscriber sub(ctx.get_executor(), cfg, options);
  asio::co_spawn(ctx, sub.run(), log_end{});
  received_log log;
  asio::co_spawn(ctx, receive_into(sub, log), log_end{});
  int reached = -1;

  const auto scenario = [&]() -> asio::awaitable<void> {
    std::vector<std::string> channels{"feed"};
    co_await sub.subscribe(channels);
    co_await pubsub::publish(publisher, "feed", "first");
    BOOST_REQUIRE(co_await eventually([&] { return log.total == 1; }, 10s));

    reached = flood_until_cut(server.url());  // blocks this loop: nothing reads the socket
    BOOST_REQUIRE(reached > 0);

    BOOST_REQUIRE(co_await eventually([&] { return sub.stats().resubscriptions == 1; }, 20s));
    std::vector<std::string> asked{"feed"};
    auto counts = co_await pubsub::numsub(publisher, asked);
    BOOST_TEST(counts["feed"] == 1);
    co_await pubsub::publish(publisher, "feed", "after");
    BOOST_REQUIRE(co_await eventually(
        [&] { return !log.by_source["feed"].empty() && log.by_source["feed"].back() == "after"; },
        10s));
  };
  corvo::test::run(ctx, scenario(), [&] {
    publisher.cancel();
    sub.cancel();
  });

  // "first", then stall-0 ... stall-(k-1) with no gap, then "after".
  const auto& feed = log.by_source["feed"];
  BOOST_TEST_REQUIRE(feed.size() >= 2u);
  BOOST_TEST(feed.front() == "first");
  BOOST_TEST(feed.back() == "after");
  std::vector<std::string> stalled;
  for (std::size_t i = 1; i + 1 < feed.size(); ++i) {
    stalled.push_back(feed[i].substr(0, feed[i].find(':')));
  }
  const int kept = static_cast<int>(stalled.size());
  BOOST_TEST_MESSAGE(reached << " messages reached the stalled subscriber, " << kept
                             << " were read before the cut");
  BOOST_TEST(stalled == numbered("stall-", 0, kept));
  // The server discarded at least what passed its hard limit: some of what reached the
  // subscriber's connection was never read, and none of it is counted as dropped.
  BOOST_TEST(kept < reached);
  BOOST_TEST(sub.stats().dropped == 0u);
  BOOST_TEST(sub.stats().received == static_cast<std::uint64_t>(kept) + 2u);
  BOOST_TEST(sub.stats().resubscriptions == 1u);
}

BOOST_AUTO_TEST_CASE(a_refused_subscription_is_an_error_and_the_connection_stays_in_step) {
  corvo::test::redis_server server({.acl_user = corvo::test::redis_acl_user{
                                        "reader", "pw", "~* resetchannels &allowed* +@all"}});
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_url(server.url());  // as "reader"
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), log_end{});
  pubsub::subscriber sub(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, sub.run(), log_end{});
  received_log log;
  asio::co_spawn(ctx, receive_into(sub, log), log_end{});

  const auto scenario = [&]() -> asio::awaitable<void> {
    const auto refused = [&](auto call) -> asio::awaitable<error_code> {
      try {
        co_await call();
      } catch (const boost::system::system_error& e) {
        co_return e.code();
      }
      co_return error_code{};
    };
    std::vector<std::string> forbidden{"allowed-1", "secret"};
    const auto ec1 = co_await refused([&] { return sub.subscribe(forbidden); });
    BOOST_TEST(ec1 == error_code(redis::error::subscription_refused), ec1.message());
    std::vector<std::string> forbidden_pattern{"sec*"};
    const auto ec2 = co_await refused([&] { return sub.psubscribe(forbidden_pattern); });
    BOOST_TEST(ec2 == error_code(redis::error::subscription_refused), ec2.message());
    std::vector<std::string> forbidden_shard{"secret-shard"};
    const auto ec3 = co_await refused([&] { return sub.ssubscribe(forbidden_shard); });
    BOOST_TEST(ec3 == error_code(redis::error::subscription_refused), ec3.message());
    BOOST_TEST(sub.channels().empty());  // all or nothing: allowed-1 is not desired either
    BOOST_TEST(sub.patterns().empty());
    BOOST_TEST(sub.shard_channels().empty());
    BOOST_TEST(sub.stats().refused == 3u);

    // The same connection goes on: an allowed subscription works and delivers.
    std::vector<std::string> allowed{"allowed-1"};
    co_await sub.subscribe(allowed);
    co_await pubsub::publish(publisher, "allowed-1", "hello");
    BOOST_REQUIRE(co_await eventually([&] { return log.total == 1; }, 10s));
    std::vector<std::string> asked{"allowed-1"};
    auto counts = co_await pubsub::numsub(publisher, asked);
    BOOST_TEST(counts["allowed-1"] == 1);
  };
  corvo::test::run(ctx, scenario(), [&] {
    publisher.cancel();
    sub.cancel();
  });
  BOOST_TEST(log.by_source["allowed-1"] == std::vector<std::string>{"hello"});
  BOOST_TEST(sub.client().standalone()->stats().connects == 1u);  // never resynchronised
}

BOOST_AUTO_TEST_CASE(cancelled_receive_loses_nothing_and_unsubscribe_stops_delivery) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_url(server.url());
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), log_end{});
  pubsub::subscriber sub(ctx.get_executor(), cfg);
  background_run run;
  asio::co_spawn(ctx, sub.run(), note_end{&run});

  const auto scenario = [&]() -> asio::awaitable<void> {
    std::vector<std::string> channels{"a", "b"};
    co_await sub.subscribe(channels);
    // Nothing published: receive() is cancelled by the timeout and leaves no trace.
    error_code timed_out;
    try {
      co_await corvo::with_timeout(sub.receive(), 50ms);
    } catch (const boost::system::system_error& e) {
      timed_out = e.code();
    }
    BOOST_TEST(timed_out == error_code(corvo::error::timed_out));
    co_await pubsub::publish(publisher, "a", R"({"n":1})");
    auto m = co_await corvo::with_timeout(sub.receive(), 10s);
    BOOST_TEST(m.channel == "a");
    using counts_by_name = std::map<std::string, int>;
    const auto decoded = m.as<counts_by_name>();
    BOOST_TEST(decoded.at("n") == 1);
    co_await pubsub::publish(publisher, "a", "not json");
    auto bad = co_await corvo::with_timeout(sub.receive(), 10s);
    BOOST_CHECK_THROW(bad.json(), pubsub::decode_error);

    std::vector<std::string> leave{"a"};
    co_await sub.unsubscribe(leave);
    BOOST_TEST(sub.channels() == std::set<std::string>{"b"});
    std::vector<std::string> asked{"a", "b"};
    auto counts = co_await pubsub::numsub(publisher, asked);
    BOOST_TEST(counts["a"] == 0);
    BOOST_TEST(counts["b"] == 1);
    co_await pubsub::publish(publisher, "a", "gone");
    co_await pubsub::publish(publisher, "b", "here");
    auto next = co_await corvo::with_timeout(sub.receive(), 10s);
    BOOST_TEST(next.channel == "b");  // "a" was not delivered after the unsubscribe
    BOOST_TEST(sub.stats().received == 3u);

    // cancel(): a waiting receive() ends with subscriber_stopped, run() returns.
    sub.cancel();
    error_code stopped;
    try {
      co_await corvo::with_timeout(sub.receive(), 10s);
    } catch (const boost::system::system_error& e) {
      stopped = e.code();
    }
    BOOST_TEST(stopped == error_code(pubsub::error::subscriber_stopped), stopped.message());
    BOOST_REQUIRE(co_await eventually([&] { return run.done; }, 10s));
    BOOST_TEST(!run.ended_with);
  };
  corvo::test::run(ctx, scenario(), [&] {
    publisher.cancel();
    sub.cancel();
  });
}

BOOST_AUTO_TEST_SUITE_END()
