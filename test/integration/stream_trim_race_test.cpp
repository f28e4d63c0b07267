// safe_trim racing with a consumer: a producer appends, a consumer reads each new entry
// (`>`), re-reads its pending entries (`0`, the recovery path) and acknowledges, while a
// trimmer trims as far as it may (`trim_undelivered`, a bound above every id): only the
// pending entries hold it back. Computing the bound and trimming in two round trips would
// let an entry be delivered in between and trimmed while pending (the re-read then finds
// its fields gone); the one-script trim never does.
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/stream/trim.hpp>
#include <map>
#include <optional>

#include "support/redis_server.hpp"
#include "support/stream_admin_fixture.hpp"
#include "support/stream_commands.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace stream = corvo::stream;
using namespace std::chrono_literals;

namespace {

constexpr const char* key = "race";
constexpr std::size_t wanted = 300;  // deliveries and trims each, at least

struct race_state {
  std::size_t delivered = 0;
  std::size_t lost = 0;
  std::size_t trims = 0;
  std::size_t trimmed = 0;
  bool done = false;
};

using entries = std::vector<std::pair<std::string, std::optional<std::vector<std::string>>>>;

asio::awaitable<void> produce(redis::client& redis, race_state& s) {
  while (!s.done) {
    co_await corvo::test::append(redis, key, corvo::test::field("n", "1"));
  }
}

asio::awaitable<void> consume(redis::client& redis, race_state& s) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!s.done) {
    redis::request read;
    read.push("XREADGROUP", "GROUP", "g", "c", "COUNT", 1, "STREAMS", key, ">");
    redis::response<std::optional<std::map<std::string, entries>>> got;
    co_await redis.exec(read, got);
    if (!std::get<0>(got).value()) {
      co_await corvo::sleep_for(100us);
      continue;
    }
    ++s.delivered;
    // Recovery path: re-read own pending entries; a trimmed one comes back without fields.
    redis::request again;
    again.push("XREADGROUP", "GROUP", "g", "c", "COUNT", 100, "STREAMS", key, "0");
    redis::response<std::optional<std::map<std::string, entries>>> pending;
    co_await redis.exec(again, pending);
    std::vector<std::string> ids;
    for (const auto& [name, list] : *std::get<0>(pending).value()) {
      for (const auto& [id, fields] : list) {
        if (!fields) {
          ++s.lost;
        }
        ids.push_back(id);
      }
    }
    redis::request ack;
    ack.push("XACK", key, "g", ids);
    co_await redis.exec(ack);
    if ((s.delivered >= wanted && s.trims >= wanted) ||
        std::chrono::steady_clock::now() > deadline) {
      s.done = true;
    }
  }
}

asio::awaitable<void> trim(redis::client& redis, race_state& s) {
  stream::trim_options everything;
  everything.min_id = "18446744073709551615-0";
  everything.trim_undelivered = true;
  while (!s.done) {
    const auto r = co_await stream::safe_trim(redis, key, everything);
    ++s.trims;
    s.trimmed += r.trimmed;
  }
}

asio::awaitable<void> run_client(redis::client& c) {
  co_await c.run();
}

asio::awaitable<race_state> race(redis::client& trimmer) {
  auto ex = co_await asio::this_coro::executor;
  redis::client producer(ex, trimmer.get_config());
  redis::client consumer(ex, trimmer.get_config());
  corvo::task_group background(ex);
  co_await background.spawn(run_client(producer));
  co_await background.spawn(run_client(consumer));
  co_await corvo::test::append(producer, key, corvo::test::field("n", "0"));
  co_await corvo::test::command(producer, "XGROUP", "CREATE", key, "g", "$");

  race_state s;
  corvo::task_group racers(ex);
  co_await racers.spawn(produce(producer, s));
  co_await racers.spawn(consume(consumer, s));
  co_await racers.spawn(trim(trimmer, s));
  co_await racers.join();
  producer.cancel();
  consumer.cancel();
  co_await background.join();
  co_return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(trimming_while_a_consumer_reads_never_removes_a_pending_entry) {
  corvo::test::redis_server server;
  corvo::test::client_runner runner(redis::client_config::from_url(server.url()));
  const auto s = runner.run<race_state>(&race);
  BOOST_TEST_MESSAGE(s.delivered << " deliveries, " << s.trims << " trims removing " << s.trimmed
                                 << " entries");
  BOOST_TEST(s.delivered >= wanted);
  BOOST_TEST(s.trims >= wanted);
  BOOST_TEST(s.trimmed > 0u);
  BOOST_TEST(s.lost == 0u);
}
