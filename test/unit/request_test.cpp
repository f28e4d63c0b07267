// Request serialization, byte for byte, and the flags the connection reads.

#include <array>
#include <boost/test/unit_test.hpp>
#include <corvo/redis/request.hpp>
#include <corvo/redis/resp3/framer.hpp>
#include <corvo/redis/resp3/parser.hpp>
#include <cstdint>
#include <limits>
#include <list>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

using corvo::redis::request;
using namespace std::string_view_literals;

namespace app {
// A user type with its own serialization, found by ADL.
struct order_id {
  std::uint64_t value;
};
inline void corvo_redis_to_bulk(std::string& payload, const order_id& id) {
  corvo::redis::resp3::add_bulk(payload, "order:" + std::to_string(id.value));
}
}  // namespace app

BOOST_AUTO_TEST_SUITE(request_serialization)

BOOST_AUTO_TEST_CASE(strings) {
  request req;
  const std::string key = "key";
  const char* value = "value";
  req.push("SET", key, std::string_view(value), "EX", "10");
  BOOST_TEST(req.payload() ==
             "*5\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n$2\r\nEX\r\n$2\r\n10\r\n");
  BOOST_TEST(req.size() == 1u);
  BOOST_TEST(req.expected_responses() == 1u);
}

BOOST_AUTO_TEST_CASE(binary_safe) {
  request req;
  req.push("SET", "k", "a\r\n\0b"sv, ""sv);
  BOOST_TEST(req.payload() == "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\n\0b\r\n$0\r\n\r\n"sv);
}

BOOST_AUTO_TEST_CASE(integers) {
  request req;
  req.push("X", 0, -1, std::numeric_limits<std::int64_t>::min(),
           std::numeric_limits<std::uint64_t>::max(), static_cast<short>(7),
           static_cast<unsigned char>(200));
  BOOST_TEST(req.payload() ==
             "*7\r\n$1\r\nX\r\n$1\r\n0\r\n$2\r\n-1\r\n$20\r\n-9223372036854775808\r\n"
             "$20\r\n18446744073709551615\r\n$1\r\n7\r\n$3\r\n200\r\n");
}

BOOST_AUTO_TEST_CASE(doubles_round_trip_in_shortest_form) {
  request req;
  req.push("ZADD", "z", 1.5, "a", 0.1, "b", -2.0, "c", std::numeric_limits<double>::infinity(), "d",
           -std::numeric_limits<double>::infinity(), "e", 1e300, "f");
  BOOST_TEST(req.payload() ==
             "*14\r\n$4\r\nZADD\r\n$1\r\nz\r\n$3\r\n1.5\r\n$1\r\na\r\n$3\r\n0.1\r\n$1\r\nb\r\n"
             "$2\r\n-2\r\n$1\r\nc\r\n$3\r\ninf\r\n$1\r\nd\r\n$4\r\n-inf\r\n$1\r\ne\r\n"
             "$6\r\n1e+300\r\n$1\r\nf\r\n");
}

BOOST_AUTO_TEST_CASE(ranges_expand_to_one_bulk_per_element) {
  request req;
  req.push("DEL", std::vector<std::string>{"a", "bb"});
  req.push("SADD", "s", std::set<int>{3, 1, 2});
  req.push("RPUSH", "l", std::list<std::string_view>{"x"}, std::array<double, 1>{2.5});
  req.push("DEL", std::vector<std::string>{});
  BOOST_TEST(req.payload() ==
             "*3\r\n$3\r\nDEL\r\n$1\r\na\r\n$2\r\nbb\r\n"
             "*5\r\n$4\r\nSADD\r\n$1\r\ns\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"
             "*4\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$1\r\nx\r\n$3\r\n2.5\r\n"
             "*1\r\n$3\r\nDEL\r\n");
  BOOST_TEST(req.size() == 4u);
  BOOST_TEST(req.expected_responses() == 4u);
}

BOOST_AUTO_TEST_CASE(maps_and_pairs_give_key_then_value) {
  request req;
  req.push("HSET", "h", std::map<std::string, int>{{"a", 1}, {"b", 2}});
  req.push("XADD", "s", "*", std::vector<std::pair<std::string, std::string>>{{"f", "v"}});
  req.push("MSET", std::pair<std::string, double>{"k", 0.5}, std::tuple<const char*, int>{"n", 3});
  BOOST_TEST(req.payload() ==
             "*6\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"
             "*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\nf\r\n$1\r\nv\r\n"
             "*5\r\n$4\r\nMSET\r\n$1\r\nk\r\n$3\r\n0.5\r\n$1\r\nn\r\n$1\r\n3\r\n");
}

BOOST_AUTO_TEST_CASE(ranges_of_variable_size_elements_are_counted) {
  request req;
  // Elements that are themselves ranges: the count comes from walking them.
  req.push("X", std::vector<std::vector<int>>{{1, 2}, {}, {3}});
  BOOST_TEST(req.payload() == "*4\r\n$1\r\nX\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n");
}

BOOST_AUTO_TEST_CASE(user_types_through_adl) {
  request req;
  req.push("GET", app::order_id{42});
  req.push("DEL", std::vector<app::order_id>{{1}, {2}});
  BOOST_TEST(req.payload() ==
             "*2\r\n$3\r\nGET\r\n$8\r\norder:42\r\n"
             "*3\r\n$3\r\nDEL\r\n$7\r\norder:1\r\n$7\r\norder:2\r\n");
}

BOOST_AUTO_TEST_CASE(payload_is_valid_resp_with_one_array_per_command) {
  request req;
  req.push("PING");
  req.push("HSET", "h", std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}});
  req.push("ZADD", "z", 1.25, "m");
  corvo::redis::resp3::framer framer;
  boost::system::error_code ec;
  std::string_view rest = req.payload();
  std::vector<std::size_t> arg_counts;
  while (auto msg = framer.next(rest, ec)) {
    std::size_t bulks = 0;
    corvo::redis::resp3::parse(
        msg->data,
        [&](const corvo::redis::resp3::node_view& n) {
          if (n.depth == 1) {
            BOOST_TEST(static_cast<int>(n.data_type) ==
                       static_cast<int>(corvo::redis::resp3::type::bulk_string));
            ++bulks;
          }
        },
        ec);
    arg_counts.push_back(bulks);
    rest.remove_prefix(msg->size());
  }
  BOOST_TEST(!ec);
  BOOST_TEST(rest.empty());
  const std::vector<std::size_t> expected = {1, 6, 4};
  BOOST_TEST(arg_counts == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(request_flags)

BOOST_AUTO_TEST_CASE(subscribe_commands_expect_no_reply) {
  request req;
  req.push("SUBSCRIBE", "a", "b");
  req.push("psubscribe", "n*");
  req.push("SSubscribe", "s");
  req.push("UNSUBSCRIBE");
  req.push("PING");
  BOOST_TEST(req.size() == 5u);
  BOOST_TEST(req.expected_responses() == 1u);
  BOOST_TEST(req.has_subscribe());
  BOOST_TEST(!req.has_hello());
}

BOOST_AUTO_TEST_CASE(hello_is_flagged) {
  request req;
  BOOST_TEST(req.get_config().hello_with_priority);
  req.push("hello", 3, "AUTH", "user", "pass");
  BOOST_TEST(req.has_hello());
  BOOST_TEST(req.expected_responses() == 1u);
}

BOOST_AUTO_TEST_CASE(blocking_commands_are_flagged) {
  request plain;
  plain.push("XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "s", ">");
  plain.push("LPOP", "q");
  BOOST_TEST(!plain.has_blocking_command());

  request stream_block;
  stream_block.push("XREADGROUP", "GROUP", "g", "c", "block", 5000, "STREAMS", "s", ">");
  BOOST_TEST(stream_block.has_blocking_command());

  for (std::string_view cmd : {"BLPOP", "brpop", "BLMOVE", "BZPOPMIN", "WAIT"}) {
    request req;
    req.push(cmd, "k", 0);
    BOOST_TEST(req.has_blocking_command(), cmd);
    BOOST_TEST(req.expected_responses() == 1u);
  }
}

BOOST_AUTO_TEST_CASE(config_and_clear) {
  request::config cfg;
  cfg.idempotent = true;
  cfg.fail_if_not_connected = true;
  request req(cfg);
  req.push("HELLO", 3);
  req.push("SUBSCRIBE", "c");
  req.push("BLPOP", "q", 1);
  req.clear();
  BOOST_TEST(req.payload().empty());
  BOOST_TEST(req.size() == 0u);
  BOOST_TEST(req.expected_responses() == 0u);
  BOOST_TEST(!req.has_hello());
  BOOST_TEST(!req.has_subscribe());
  BOOST_TEST(!req.has_blocking_command());
  BOOST_TEST(req.get_config().idempotent);
  BOOST_TEST(req.get_config().fail_if_not_connected);
}

BOOST_AUTO_TEST_SUITE_END()
