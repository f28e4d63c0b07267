// stream::admin and safe_trim on the 6-node test cluster, for a hash-tagged stream name and
// an untagged one: every call is routed to the stream's slot; the default dead-letter key
// shares that slot, so replay is one script; a dead-letter stream in another slot than its
// entries' source is refused with a clear error, its entry kept.
#include <boost/test/unit_test.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <corvo/stream/admin.hpp>

#include "support/redis_cluster.hpp"
#include "support/stream_admin_fixture.hpp"
#include "support/stream_commands.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace stream = corvo::stream;
using corvo::test::append;
using corvo::test::command;

namespace corvo::stream {
std::ostream& operator<<(std::ostream& out, replay_status s) {
  return out << to_string(s);
}
std::ostream& operator<<(std::ostream& out, trim_limit l) {
  return out << to_string(l);
}
}  // namespace corvo::stream

namespace {

const corvo::test::stream_fields original{{"type", "payment.failed"}, {"data", "{}"}};

asio::awaitable<void> admin_on_one_stream(redis::client& redis, std::string key) {
  for (int i = 1; i <= 4; ++i) {
    co_await append(redis, key, corvo::test::field("n", std::to_string(i)),
                    std::to_string(i * 1000) + "-0");
  }
  co_await command(redis, "XGROUP", "CREATE", key, "g", "0");
  const auto read = co_await corvo::test::read_group(redis, key, "g", "c1", 2);
  BOOST_TEST(read.size() == 2u);
  co_await command(redis, "XACK", key, "g", "1000-0");

  stream::admin admin(redis);
  const auto info = co_await admin.info(key);
  BOOST_TEST(info.length == 4u, key);
  BOOST_REQUIRE(info.groups.size() == 1u);
  BOOST_TEST(info.groups[0].pending == 1u);
  BOOST_TEST(info.groups[0].lag.value() == 2u);
  const auto groups = co_await admin.groups(key);
  BOOST_REQUIRE(groups.size() == 1u);
  BOOST_REQUIRE(groups[0].consumer_list.size() == 1u);
  const auto pending = co_await admin.pending(key, "g");
  BOOST_TEST(pending.lowest_id.value() == "2000-0");

  stream::trim_options old;
  old.max_age = std::chrono::hours(1);
  old.trim_undelivered = true;
  const auto trimmed = co_await admin.trim(key, old);
  BOOST_TEST(trimmed.trimmed == 1u, key);
  BOOST_TEST(trimmed.min_id == "2000-0");
  BOOST_TEST(trimmed.limited_by == stream::trim_limit::pending);

  const auto dlq = stream::dead_letter_key(key);
  BOOST_TEST(redis::key_slot(dlq) == redis::key_slot(key));
  const auto letter =
      corvo::test::dead_letter_fields(key, "3000-0", "g", "c1", 5, "handler failed", 1, original);
  const auto id = co_await append(redis, dlq, letter);
  const auto page = co_await admin.dead_letters(dlq);
  BOOST_REQUIRE(page.entries.size() == 1u);
  BOOST_TEST(page.entries[0].source_stream == key);
  const auto replayed = co_await admin.replay(dlq, id);
  BOOST_TEST(replayed.status == stream::replay_status::replayed);
  BOOST_TEST((co_await corvo::test::entry_fields(redis, key, replayed.new_id)) == original);
  BOOST_TEST((co_await corvo::test::stream_ids(redis, dlq)).empty());
  co_await append(redis, dlq, letter);
  BOOST_TEST(co_await admin.purge_all(dlq) == 1u);
}

asio::awaitable<void> tagged_and_untagged(redis::client& redis) {
  co_await admin_on_one_stream(redis, "{orders}:events");
  co_await admin_on_one_stream(redis, "payments");

  // A dead-letter stream in another slot than the source stream: refused, kept.
  const std::string elsewhere = "elsewhere:dlq";
  BOOST_REQUIRE(redis::key_slot(elsewhere) != redis::key_slot("payments"));
  const auto letter =
      corvo::test::dead_letter_fields("payments", "1-0", "g", "c1", 5, "r", 1, original);
  const auto id = co_await append(redis, elsewhere, letter);
  stream::admin admin(redis);
  boost::system::error_code refused;
  try {
    co_await admin.replay(elsewhere, id);
  } catch (const boost::system::system_error& e) {
    refused = e.code();
  }
  BOOST_TEST(refused == make_error_code(stream::admin_error::cross_slot));
  BOOST_TEST((co_await corvo::test::stream_ids(redis, elsewhere)).size() == 1u);

  boost::system::error_code missing;
  try {
    co_await admin.info("no-such-stream");
  } catch (const boost::system::system_error& e) {
    missing = e.code();
  }
  BOOST_TEST(missing == make_error_code(stream::admin_error::no_such_stream));
}

}  // namespace

BOOST_AUTO_TEST_CASE(admin_and_trim_work_per_slot_on_the_cluster) {
  corvo::test::redis_cluster cluster;
  // The two streams live on different masters here, so routing is exercised.
  BOOST_TEST(cluster.node_for_slot(cluster.key_slot("{orders}:events")) !=
             cluster.node_for_slot(cluster.key_slot("payments")));
  corvo::test::client_runner runner(redis::client_config::from_cluster_seeds(cluster.seed_urls()));
  runner.run<void>(&tagged_and_untagged);
}
