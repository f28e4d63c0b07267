// `corvo stream info|groups|pending|dlq list|dlq replay|dlq purge|trim` against a real
// redis-server, run as a separate process: readable output and --json. (Bad input and the
// cluster: stream_cli_errors_test.)
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <filesystem>

#include "support/child_process.hpp"
#include "support/corvo_program.hpp"
#include "support/redis_server.hpp"

namespace json = boost::json;

namespace {

struct cli {
  std::vector<std::string> connection;
  corvo::test::command_result operator()(std::vector<std::string> words) const {
    std::vector<std::string> argv{corvo::test::corvo_program().string()};
    argv.insert(argv.end(), words.begin(), words.end());
    argv.insert(argv.end(), connection.begin(), connection.end());
    return corvo::test::run_command(argv, std::chrono::seconds(30));
  }
  json::value json_of(std::vector<std::string> words) const {
    words.push_back("--json");
    const auto r = (*this)(words);
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    return json::parse(r.out);
  }
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// orders: 1000-0 … 4000-0; group billing read 1000 … 3000, acked 1000 (2000, 3000 pending).
void seed(corvo::test::redis_server& server) {
  for (int i = 1; i <= 4; ++i) {
    server.cli("XADD", "orders", std::to_string(i * 1000) + "-0", "n", std::to_string(i));
  }
  server.cli("XGROUP", "CREATE", "orders", "billing", "0");
  server.cli("XREADGROUP", "GROUP", "billing", "b1", "COUNT", "3", "STREAMS", "orders", ">");
  server.cli("XACK", "orders", "billing", "1000-0");
  server.cli("SET", "a-string", "x");
}

std::string add_dead_letter(corvo::test::redis_server& server, const std::string& dlq,
                            const std::string& reason) {
  return server.cli("XADD", dlq, "*", "dlq.stream", "orders", "dlq.id", "2000-0", "dlq.group",
                    "billing", "dlq.consumer", "b1", "dlq.deliveries", "5", "dlq.reason", reason,
                    "dlq.at_ms", "1700000000000", "type", "order.paid", "data", "{\"id\":2}");
}

}  // namespace

BOOST_AUTO_TEST_CASE(info_groups_pending_and_trim) {
  corvo::test::redis_server server;
  seed(server);
  const cli corvo{{"--redis", server.url()}};

  auto r = corvo({"stream", "info", "orders"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(contains(r.out, "length          4"), r.out);
  BOOST_TEST(contains(r.out, "first id        1000-0"), r.out);
  BOOST_TEST(contains(r.out, "billing"), r.out);
  const auto info = corvo.json_of({"stream", "info", "orders"});
  BOOST_TEST(info.at("length").as_int64() == 4);
  BOOST_TEST(info.at("last_id").as_string() == "4000-0");
  BOOST_TEST(info.at("groups").at(0).at("pending").as_int64() == 2);
  BOOST_TEST(info.at("groups").at(0).at("lag").as_int64() == 1);

  const auto groups = corvo.json_of({"stream", "groups", "orders"});
  BOOST_TEST(groups.at(0).at("name").as_string() == "billing");
  BOOST_TEST(groups.at(0).at("consumer_list").at(0).at("name").as_string() == "b1");
  r = corvo({"stream", "groups", "orders"});
  BOOST_TEST(contains(r.out, "CONSUMER"), r.out);

  const auto pending = corvo.json_of({"stream", "pending", "orders", "billing"});
  BOOST_TEST(pending.at("count").as_int64() == 2);
  BOOST_TEST(pending.at("lowest_id").as_string() == "2000-0");
  BOOST_TEST(pending.at("entries").as_array().size() == 2u);
  BOOST_TEST(pending.at("per_consumer").at("b1").as_int64() == 2);
  r = corvo({"stream", "pending", "orders", "billing", "--consumer", "nobody"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(contains(r.out, "2 pending in group billing (2000-0 .. 3000-0)"), r.out);

  // Trim by age: billing's oldest pending entry (2000) bounds it.
  const auto trimmed = corvo.json_of({"stream", "trim", "orders", "--max-age", "1h"});
  BOOST_TEST(trimmed.at("trimmed").as_int64() == 1);
  BOOST_TEST(trimmed.at("min_id").as_string() == "2000-0");
  BOOST_TEST(trimmed.at("limited_by").as_string() == "pending");
  BOOST_TEST(trimmed.at("limiting_group").as_string() == "billing");
  r = corvo({"stream", "trim", "orders", "--min-id", "5000"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(contains(r.out, "trimmed 0 entries of orders below 2000-0"), r.out);
  BOOST_TEST(contains(r.out, "kept back by pending entries of group billing"), r.out);
  BOOST_TEST(server.cli("XLEN", "orders") == "3");
}

BOOST_AUTO_TEST_CASE(dead_letters_list_replay_and_purge) {
  corvo::test::redis_server server;
  seed(server);
  const cli corvo{{"--redis", server.url()}};
  const auto first = add_dead_letter(server, "{orders}:dlq", "handler failed 5 times");
  const auto second = add_dead_letter(server, "{orders}:dlq", "no handler");
  const auto broken = server.cli("XADD", "{orders}:dlq", "*", "dlq.stream", "orders");

  auto r = corvo({"stream", "dlq", "list", "orders"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(contains(r.out, "handler failed 5 times"), r.out);
  BOOST_TEST(contains(r.out, "2023-11-14T22:13:20.000Z"), r.out);
  BOOST_TEST(contains(r.out, "type=order.paid"), r.out);
  BOOST_TEST(contains(r.out, "malformed " + broken), r.out);
  const auto listed = corvo.json_of({"stream", "dlq", "list", "orders"});
  BOOST_TEST(listed.at("dead_letter_stream").as_string() == "{orders}:dlq");
  BOOST_TEST(listed.at("entries").as_array().size() == 2u);
  BOOST_TEST(listed.at("entries").at(0).at("id").as_string() == first);
  BOOST_TEST(listed.at("entries").at(0).at("deliveries").as_int64() == 5);
  BOOST_TEST(listed.at("malformed").at(0).at("id").as_string() == broken);

  const auto replayed = corvo.json_of({"stream", "dlq", "replay", "orders", first});
  BOOST_TEST(replayed.at(0).at("status").as_string() == "replayed");
  const std::string new_id(replayed.at(0).at("new_id").as_string());
  BOOST_TEST(server.cli("XRANGE", "orders", new_id, new_id) ==
             new_id + "\ntype\norder.paid\ndata\n{\"id\":2}");
  r = corvo({"stream", "dlq", "replay", "orders", first});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.out, "no dead letter " + first), r.out);

  // Replay all: the good one goes back, the malformed one is kept and the exit code says so.
  r = corvo({"stream", "dlq", "replay", "orders", "--all"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(contains(r.out, "replayed " + second + " -> orders"), r.out);
  BOOST_TEST(contains(r.out, "kept malformed " + broken), r.out);
  BOOST_TEST(server.cli("XLEN", "{orders}:dlq") == "1");

  r = corvo({"stream", "dlq", "purge", "orders", broken});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(contains(r.out, "purged 1 dead letter(s) from {orders}:dlq"), r.out);
  add_dead_letter(server, "{orders}:dlq", "x");
  add_dead_letter(server, "{orders}:dlq", "y");
  const auto aged = corvo.json_of({"stream", "dlq", "purge", "orders", "--older-than", "1h"});
  BOOST_TEST(aged.at("purged").as_int64() == 0);
  const auto purged = corvo.json_of({"stream", "dlq", "purge", "orders", "--all"});
  BOOST_TEST(purged.at("purged").as_int64() == 2);

  // --dlq names another dead-letter stream.
  add_dead_letter(server, "custom-dlq", "z");
  const auto custom = corvo.json_of({"stream", "dlq", "list", "orders", "--dlq", "custom-dlq"});
  BOOST_TEST(custom.at("entries").as_array().size() == 1u);
}
