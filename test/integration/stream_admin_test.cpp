// stream::admin on a real redis-server: stream and group info, pending entries, dead-letter
// listing / replay / purge (dead letters written by XADD in the layout of dead_letter.hpp),
// malformed dead letters, and the error for a missing stream, a wrong-type key, a bad id.
#include <boost/test/unit_test.hpp>
#include <corvo/stream/admin.hpp>

#include "support/redis_server.hpp"
#include "support/stream_admin_fixture.hpp"
#include "support/stream_commands.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace stream = corvo::stream;
using corvo::test::append;
using corvo::test::command;
using corvo::test::stream_fields;

namespace corvo::stream {
std::ostream& operator<<(std::ostream& out, replay_status s) {
  return out << to_string(s);
}
}  // namespace corvo::stream

boost::system::error_code code(stream::admin_error e) {
  return make_error_code(e);
}

template <class Awaitable>
asio::awaitable<boost::system::error_code> error_of(Awaitable op) {
  try {
    co_await std::move(op);
  } catch (const boost::system::system_error& e) {
    co_return e.code();
  }
  co_return boost::system::error_code{};
}

asio::awaitable<void> groups_and_pending(redis::client& redis) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    const auto fields = corvo::test::field("n", std::to_string(i));
    ids.push_back(co_await append(redis, "orders", fields));
  }
  co_await command(redis, "XGROUP", "CREATE", "orders", "billing", "0");
  co_await command(redis, "XGROUP", "CREATE", "orders", "audit", "$");
  const auto read = co_await corvo::test::read_group(redis, "orders", "billing", "c1", 2);
  BOOST_TEST(read.size() == 2u);
  co_await command(redis, "XACK", "orders", "billing", ids[0]);

  stream::admin admin(redis);
  const auto info = co_await admin.info("orders");
  BOOST_TEST(info.length == 5u);
  BOOST_TEST(info.first_id.value() == ids[0]);
  BOOST_TEST(info.last_id.value() == ids[4]);
  BOOST_TEST(info.last_generated_id == ids[4]);
  BOOST_TEST(info.entries_added.value() == 5u);
  BOOST_REQUIRE(info.groups.size() == 2u);
  const auto& audit = info.groups[0].name == "audit" ? info.groups[0] : info.groups[1];
  const auto& billing = info.groups[0].name == "billing" ? info.groups[0] : info.groups[1];
  BOOST_TEST(billing.name == "billing");
  BOOST_TEST(billing.consumers == 1u);
  BOOST_TEST(billing.pending == 1u);
  BOOST_TEST(billing.last_delivered_id == ids[1]);
  BOOST_TEST(billing.entries_read.value() == 2u);
  BOOST_TEST(billing.lag.value() == 3u);
  BOOST_TEST(audit.pending == 0u);
  BOOST_TEST(audit.last_delivered_id == ids[4]);
  BOOST_TEST(audit.lag.value() == 0u);

  const auto groups = co_await admin.groups("orders");
  BOOST_REQUIRE(groups.size() == 2u);
  for (const auto& g : groups) {
    if (g.name == "billing") {
      BOOST_REQUIRE(g.consumer_list.size() == 1u);
      BOOST_TEST(g.consumer_list[0].name == "c1");
      BOOST_TEST(g.consumer_list[0].pending == 1u);
    } else {
      BOOST_TEST(g.consumer_list.empty());
    }
  }

  const auto summary = co_await admin.pending("orders", "billing");
  BOOST_TEST(summary.count == 1u);
  BOOST_TEST(summary.lowest_id.value() == ids[1]);
  BOOST_TEST(summary.highest_id.value() == ids[1]);
  BOOST_REQUIRE(summary.per_consumer.size() == 1u);
  BOOST_TEST(summary.per_consumer[0].first == "c1");
  BOOST_TEST(summary.per_consumer[0].second == 1u);
  const auto none = co_await admin.pending("orders", "audit");
  BOOST_TEST(none.count == 0u);
  BOOST_TEST(!none.lowest_id.has_value());

  stream::pending_query all;
  const auto entries = co_await admin.pending_entries("orders", "billing", all);
  BOOST_REQUIRE(entries.size() == 1u);
  BOOST_TEST(entries[0].id == ids[1]);
  BOOST_TEST(entries[0].consumer == "c1");
  BOOST_TEST(entries[0].deliveries == 1u);
  stream::pending_query other_consumer;
  other_consumer.consumer = "c2";
  BOOST_TEST((co_await admin.pending_entries("orders", "billing", other_consumer)).empty());
  stream::pending_query idle_long;
  idle_long.min_idle = std::chrono::hours(1);
  BOOST_TEST((co_await admin.pending_entries("orders", "billing", idle_long)).empty());
}

BOOST_AUTO_TEST_CASE(info_groups_and_pending_report_what_redis_holds) {
  corvo::test::redis_server server;
  corvo::test::client_runner runner(redis::client_config::from_url(server.url()));
  runner.run<void>(&groups_and_pending);
}

asio::awaitable<void> clear_errors(redis::client& redis) {
  co_await command(redis, "SET", "plain", "v");
  const auto one = corvo::test::field("a", "1");
  co_await append(redis, "events", one);
  stream::admin admin(redis);
  BOOST_TEST((co_await error_of(admin.info("missing"))) ==
             code(stream::admin_error::no_such_stream));
  BOOST_TEST((co_await error_of(admin.groups("missing"))) ==
             code(stream::admin_error::no_such_stream));
  BOOST_TEST((co_await error_of(admin.info("plain"))) == code(stream::admin_error::wrong_type));
  BOOST_TEST((co_await error_of(admin.pending("plain", "g"))) ==
             code(stream::admin_error::wrong_type));
  BOOST_TEST((co_await error_of(admin.pending("events", "nogroup"))) ==
             code(stream::admin_error::no_such_group));
  stream::pending_query bad;
  bad.start = "yesterday";
  co_await command(redis, "XGROUP", "CREATE", "events", "g", "0");
  BOOST_TEST((co_await error_of(admin.pending_entries("events", "g", bad))) ==
             code(stream::admin_error::bad_id));
  BOOST_TEST((co_await error_of(admin.dead_letters("plain"))) ==
             code(stream::admin_error::wrong_type));
  BOOST_TEST((co_await error_of(admin.replay(stream::dead_letter_key("events"), "x-1"))) ==
             code(stream::admin_error::bad_id));
  BOOST_TEST((co_await error_of(admin.purge_all("plain"))) ==
             code(stream::admin_error::wrong_type));
  // A missing dead-letter stream is simply empty.
  const auto page = co_await admin.dead_letters(stream::dead_letter_key("events"));
  BOOST_TEST(page.entries.empty());
  BOOST_TEST(page.malformed.empty());
  const auto nothing = co_await admin.replay(stream::dead_letter_key("events"), "1-0");
  BOOST_TEST(nothing.status == stream::replay_status::not_found);
  // The message names the key.
  try {
    co_await admin.info("missing");
  } catch (const boost::system::system_error& e) {
    BOOST_TEST(std::string(e.what()).find("stream 'missing' does not exist") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(missing_stream_wrong_type_unknown_group_and_bad_ids_are_clear_errors) {
  corvo::test::redis_server server;
  corvo::test::client_runner runner(redis::client_config::from_url(server.url()));
  runner.run<void>(&clear_errors);
}

BOOST_AUTO_TEST_CASE(ids_are_validated_and_normalized) {
  BOOST_TEST(stream::normalize_id("1700000000000-3").value() == "1700000000000-3");
  BOOST_TEST(stream::normalize_id("1700000000000").value() == "1700000000000-0");
  BOOST_TEST(stream::normalize_id("18446744073709551615-18446744073709551615").has_value());
  BOOST_TEST(!stream::normalize_id("18446744073709551616-0").has_value());
  BOOST_TEST(!stream::normalize_id("").has_value());
  BOOST_TEST(!stream::normalize_id("-").has_value());
  BOOST_TEST(!stream::normalize_id("+").has_value());
  BOOST_TEST(!stream::normalize_id("12-").has_value());
  BOOST_TEST(!stream::normalize_id("-5").has_value());
  BOOST_TEST(!stream::normalize_id("1-2-3").has_value());
  BOOST_TEST(!stream::normalize_id("abc").has_value());
}

const std::string dlq = stream::dead_letter_key("orders");  // "{orders}:dlq"

// An original entry with a field named like a metadata field: carried through untouched.
const stream_fields paid_order{{"type", "order.paid"}, {"data", "{\"id\":7}"}, {"dlq.reason", "x"}};

asio::awaitable<void> dead_letters_replay_and_purge(redis::client& redis) {
  const auto& original = paid_order;
  BOOST_TEST(dlq == "{orders}:dlq");
  const auto written =
      corvo::test::dead_letter_fields("orders", "1700000000000-0", "billing", "host-42", 3,
                                      "handler failed 3 times", 1700000001234, original);
  const auto first = co_await append(redis, dlq, written);
  const auto other = corvo::test::field("k", "v");
  const auto second_fields = corvo::test::dead_letter_fields(
      "orders", "1700000000001-0", "audit", "host-43", 1, "unknown type", 1700000002000, other);
  const auto second = co_await append(redis, dlq, second_fields);

  stream::admin admin(redis);
  const auto page = co_await admin.dead_letters(dlq);
  BOOST_TEST(page.malformed.empty());
  BOOST_REQUIRE(page.entries.size() == 2u);
  const auto& d = page.entries[0];
  BOOST_TEST(d.id == first);
  BOOST_TEST(d.source_stream == "orders");
  BOOST_TEST(d.source_id == "1700000000000-0");
  BOOST_TEST(d.group == "billing");
  BOOST_TEST(d.consumer == "host-42");
  BOOST_TEST(d.deliveries == 3u);
  BOOST_TEST(d.reason == "handler failed 3 times");
  BOOST_TEST(d.at_ms == 1700000001234);
  BOOST_TEST((d.fields == original));  // an original field named like metadata included
  BOOST_TEST(!page.next.has_value());
  const auto paged = co_await admin.dead_letters(dlq, "-", 1);
  BOOST_REQUIRE(paged.entries.size() == 1u);
  BOOST_TEST(paged.next.value() == first);
  const auto rest = co_await admin.dead_letters(dlq, *paged.next, 1);
  BOOST_REQUIRE(rest.entries.size() == 1u);
  BOOST_TEST(rest.entries[0].id == second);

  // Replay: back in the source stream with exactly its fields, gone from the dead letters.
  const auto replayed = co_await admin.replay(dlq, first);
  BOOST_TEST(replayed.status == stream::replay_status::replayed);
  BOOST_TEST(replayed.source_stream == "orders");
  BOOST_TEST((co_await corvo::test::entry_fields(redis, "orders", replayed.new_id)) == original);
  const std::vector<std::string> only_second(1, second);
  BOOST_TEST((co_await corvo::test::stream_ids(redis, dlq)) == only_second);
  // Not doubled: replaying it again finds nothing.
  const auto again = co_await admin.replay(dlq, first);
  BOOST_TEST(again.status == stream::replay_status::not_found);
  BOOST_TEST((co_await corvo::test::stream_ids(redis, "orders")).size() == 1u);

  // Purge by id.
  BOOST_TEST(co_await admin.purge(dlq, second));
  BOOST_TEST(!(co_await admin.purge(dlq, second)));
  BOOST_TEST((co_await corvo::test::stream_ids(redis, dlq)).empty());

  // Purge by age: ids made 1970 and now; only the old one goes. (DEL: an id below the
  // stream's last generated one cannot be added.)
  co_await command(redis, "DEL", dlq);
  co_await append(redis, dlq, written, "1000-0");
  const auto recent = co_await append(redis, dlq, written);
  BOOST_TEST(co_await admin.purge_older_than(dlq, std::chrono::hours(1)) == 1u);
  const std::vector<std::string> only_recent(1, recent);
  BOOST_TEST((co_await corvo::test::stream_ids(redis, dlq)) == only_recent);
  co_await append(redis, dlq, written);
  BOOST_TEST(co_await admin.purge_all(dlq) == 2u);
  BOOST_TEST((co_await corvo::test::stream_ids(redis, dlq)).empty());
}

BOOST_AUTO_TEST_CASE(dead_letters_are_listed_replayed_once_and_purged) {
  corvo::test::redis_server server;
  corvo::test::client_runner runner(redis::client_config::from_url(server.url()));
  runner.run<void>(&dead_letters_replay_and_purge);
}

const stream_fields too_short{{"dlq.stream", "orders"}, {"oops", "1"}};

asio::awaitable<void> malformed_dead_letters(redis::client& redis) {
  const auto original = corvo::test::field("type", "t");
  auto misordered = corvo::test::dead_letter_fields("orders", "1-0", "g", "c", 1, "r", 1, original);
  std::swap(misordered[2], misordered[3]);
  auto bad_count = corvo::test::dead_letter_fields("orders", "1-0", "g", "c", 1, "r", 1, original);
  bad_count[4].second = "three";
  const auto only_metadata =
      corvo::test::dead_letter_fields("orders", "1-0", "g", "c", 1, "r", 1, stream_fields());
  const auto good = corvo::test::dead_letter_fields("orders", "1-0", "g", "c", 2, "r", 5, original);

  const auto a = co_await append(redis, dlq, too_short);
  const auto b = co_await append(redis, dlq, misordered);
  const auto c = co_await append(redis, dlq, good);
  const auto d = co_await append(redis, dlq, bad_count);
  const auto e = co_await append(redis, dlq, only_metadata);

  stream::admin admin(redis);
  const auto page = co_await admin.dead_letters(dlq);
  BOOST_REQUIRE(page.entries.size() == 1u);
  BOOST_TEST(page.entries[0].id == c);
  BOOST_REQUIRE(page.malformed.size() == 4u);
  BOOST_TEST(page.malformed[0].id == a);
  BOOST_TEST(page.malformed[0].problem.find("has 2 field(s)") != std::string::npos);
  BOOST_TEST((page.malformed[0].fields == too_short));
  BOOST_TEST(page.malformed[1].id == b);
  BOOST_TEST(page.malformed[1].problem == "field 3 is \"dlq.consumer\", expected \"dlq.group\"");
  BOOST_TEST(page.malformed[2].id == d);
  BOOST_TEST(page.malformed[2].problem.find("dlq.deliveries") != std::string::npos);
  BOOST_TEST(page.malformed[3].id == e);

  // Replaying a malformed one reports it and keeps it.
  const auto refused = co_await admin.replay(dlq, b);
  BOOST_TEST(refused.status == stream::replay_status::malformed);
  BOOST_TEST(refused.problem == page.malformed[1].problem);

  // Replay all: the good one goes back, the four malformed ones stay, each reported.
  const auto outcomes = co_await admin.replay_all(dlq);
  BOOST_REQUIRE(outcomes.size() == 5u);
  std::size_t replayed = 0, malformed = 0;
  for (const auto& o : outcomes) {
    replayed += o.status == stream::replay_status::replayed;
    malformed += o.status == stream::replay_status::malformed;
  }
  BOOST_TEST(replayed == 1u);
  BOOST_TEST(malformed == 4u);
  std::vector<std::string> kept_ids;
  kept_ids.push_back(a);
  kept_ids.push_back(b);
  kept_ids.push_back(d);
  kept_ids.push_back(e);
  BOOST_TEST((co_await corvo::test::stream_ids(redis, dlq)) == kept_ids);
  const auto back = co_await corvo::test::stream_ids(redis, "orders");
  BOOST_REQUIRE(back.size() == 1u);
  BOOST_TEST((co_await corvo::test::entry_fields(redis, "orders", back[0])) == original);

  // A source key of another type: refused, the dead letter kept.
  co_await command(redis, "DEL", "orders");
  co_await command(redis, "SET", "orders", "not a stream");
  const auto kept = co_await append(redis, dlq, good);
  BOOST_TEST((co_await error_of(admin.replay(dlq, kept))) == code(stream::admin_error::wrong_type));
  BOOST_TEST((co_await corvo::test::stream_ids(redis, dlq)).size() == 5u);
  // replay_all reports it (and the malformed ones) and keeps every one of them.
  const auto all_kept = co_await admin.replay_all(dlq);
  BOOST_REQUIRE(all_kept.size() == 5u);
  BOOST_TEST(all_kept.back().id == kept);
  BOOST_TEST(all_kept.back().status == stream::replay_status::refused);
  BOOST_TEST(all_kept.back().problem.find("holds a string, not a stream") != std::string::npos);
  BOOST_TEST((co_await corvo::test::stream_ids(redis, dlq)).size() == 5u);
}

BOOST_AUTO_TEST_CASE(malformed_dead_letters_are_reported_and_never_replayed_or_dropped) {
  corvo::test::redis_server server;
  corvo::test::client_runner runner(redis::client_config::from_url(server.url()));
  runner.run<void>(&malformed_dead_letters);
}
