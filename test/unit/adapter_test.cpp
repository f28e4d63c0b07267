// Response adapters: every declared type, the accepted wire forms, server errors with their
// text, mismatches as error codes, and the type-erased any_adapter the connection uses.

#include <boost/system/system_error.hpp>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <corvo/redis/adapter.hpp>
#include <corvo/redis/error.hpp>
#include <corvo/redis/resp3/framer.hpp>
#include <corvo/redis/response.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace redis = corvo::redis;
namespace resp3 = corvo::redis::resp3;
using boost::system::error_code;
using redis::error;
using redis::result;

// Compared with error codes, which print themselves.
BOOST_TEST_DONT_PRINT_LOG_VALUE(corvo::redis::error)

namespace {

template <class T>
result<T> adapt_one(std::string_view wire) {
  result<T> r;
  error_code ec;
  redis::adapt(wire, r, ec);
  BOOST_TEST(!ec);
  return r;
}

template <class T>
error_code error_of(std::string_view wire) {
  result<T> r = adapt_one<T>(wire);
  return r.has_error() ? r.error().code : error_code{};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(adapter_leaves)

BOOST_AUTO_TEST_CASE(string_from_every_textual_type) {
  BOOST_TEST(*adapt_one<std::string>("+OK\r\n") == "OK");
  BOOST_TEST(*adapt_one<std::string>("$5\r\nhello\r\n") == "hello");
  BOOST_TEST(*adapt_one<std::string>("=15\r\ntxt:Some string\r\n") == "Some string");
  BOOST_TEST(*adapt_one<std::string>(":42\r\n") == "42");
  BOOST_TEST(*adapt_one<std::string>(",1.5\r\n") == "1.5");
  BOOST_TEST(*adapt_one<std::string>("(12345678901234567890123\r\n") == "12345678901234567890123");
  BOOST_TEST(error_of<std::string>("#t\r\n") == error::type_mismatch);
  BOOST_TEST(error_of<std::string>("*1\r\n+a\r\n") == error::type_mismatch);
  BOOST_TEST(error_of<std::string>("_\r\n") == error::unexpected_null);
  BOOST_TEST(error_of<std::string>("$-1\r\n") == error::unexpected_null);
}

BOOST_AUTO_TEST_CASE(integers_from_integers_and_decimal_strings) {
  BOOST_TEST(*adapt_one<std::int64_t>(":-9223372036854775808\r\n") ==
             std::numeric_limits<std::int64_t>::min());
  BOOST_TEST(*adapt_one<std::int64_t>("$2\r\n42\r\n") == 42);  // GET of a counter
  BOOST_TEST(*adapt_one<int>("+7\r\n") == 7);
  BOOST_TEST(*adapt_one<std::uint64_t>("(18446744073709551615\r\n") ==
             std::numeric_limits<std::uint64_t>::max());
  BOOST_TEST(error_of<std::uint8_t>(":300\r\n") == error::not_a_number);
  BOOST_TEST(error_of<unsigned>(":-1\r\n") == error::not_a_number);
  BOOST_TEST(error_of<int>("$3\r\n4.5\r\n") == error::not_a_number);
  BOOST_TEST(error_of<int>("$0\r\n\r\n") == error::not_a_number);
  BOOST_TEST(error_of<int>(",1\r\n") == error::type_mismatch);
  BOOST_TEST(error_of<int>("*0\r\n") == error::type_mismatch);
  result<int> r = adapt_one<int>("$3\r\nabc\r\n");
  BOOST_REQUIRE(r.has_error());
  BOOST_TEST(r.error().message.find("abc") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(doubles) {
  BOOST_TEST(*adapt_one<double>(",3.25\r\n") == 3.25);
  BOOST_TEST(*adapt_one<double>(",-inf\r\n") == -std::numeric_limits<double>::infinity());
  BOOST_TEST(std::isnan(*adapt_one<double>(",nan\r\n")));
  BOOST_TEST(*adapt_one<double>(":2\r\n") == 2.0);
  BOOST_TEST(*adapt_one<double>("$4\r\n0.25\r\n") == 0.25);  // ZSCORE in RESP2 form
  BOOST_TEST(*adapt_one<float>(",0.5\r\n") == 0.5f);
  BOOST_TEST(error_of<double>("$2\r\nxx\r\n") == error::not_a_number);
  BOOST_TEST(error_of<double>("#f\r\n") == error::type_mismatch);
}

BOOST_AUTO_TEST_CASE(booleans) {
  BOOST_TEST(*adapt_one<bool>("#t\r\n") == true);
  BOOST_TEST(*adapt_one<bool>("#f\r\n") == false);
  BOOST_TEST(*adapt_one<bool>(":1\r\n") == true);
  BOOST_TEST(*adapt_one<bool>(":0\r\n") == false);
  BOOST_TEST(error_of<bool>(":2\r\n") == error::type_mismatch);
  BOOST_TEST(error_of<bool>("+OK\r\n") == error::type_mismatch);
}

BOOST_AUTO_TEST_CASE(optional_maps_null_to_nullopt) {
  for (std::string_view null : {"_\r\n", "$-1\r\n", "*-1\r\n"}) {
    result<std::optional<std::string>> r = adapt_one<std::optional<std::string>>(null);
    BOOST_REQUIRE(r.has_value());
    BOOST_TEST(!r->has_value());
  }
  auto r = adapt_one<std::optional<std::string>>("$1\r\nv\r\n");
  BOOST_TEST(r->value() == "v");
  BOOST_TEST(error_of<std::optional<int>>("+x\r\n") == error::not_a_number);
}

BOOST_AUTO_TEST_CASE(server_errors_keep_their_text) {
  result<std::string> r = adapt_one<std::string>("-ERR unknown command 'FOO'\r\n");
  BOOST_REQUIRE(r.has_error());
  BOOST_TEST(r.error().code == error::server_error);
  BOOST_TEST(r.error().message == "ERR unknown command 'FOO'");
  BOOST_TEST(redis::is_reply_error(r.error().code));

  result<std::vector<int>> bulk = adapt_one<std::vector<int>>("!21\r\nSYNTAX invalid syntax\r\n");
  BOOST_REQUIRE(bulk.has_error());
  BOOST_TEST(bulk.error().code == error::server_error);
  BOOST_TEST(bulk.error().message == "SYNTAX invalid syntax");

  // Even when the declared type would accept anything, and inside optionals.
  BOOST_TEST(error_of<redis::ignore_t>("-ERR x\r\n") == error::server_error);
  BOOST_TEST(error_of<std::optional<int>>("-ERR x\r\n") == error::server_error);
  BOOST_TEST(error_of<std::vector<resp3::node>>("-ERR x\r\n") == error::server_error);
}

BOOST_AUTO_TEST_CASE(value_throws_with_code_and_text) {
  result<int> r = adapt_one<int>("-NOSCRIPT No matching script\r\n");
  try {
    (void)r.value();
    BOOST_FAIL("value() did not throw");
  } catch (const boost::system::system_error& e) {
    BOOST_TEST(e.code() == error::server_error);
    BOOST_TEST(std::string(e.what()).find("NOSCRIPT No matching script") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(ignore_accepts_anything_but_errors) {
  BOOST_TEST(adapt_one<redis::ignore_t>("*2\r\n%1\r\n+a\r\n+b\r\n_\r\n").has_value());
  BOOST_TEST(adapt_one<redis::ignore_t>("_\r\n").has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(adapter_aggregates)

BOOST_AUTO_TEST_CASE(vectors) {
  auto v = adapt_one<std::vector<std::string>>("*3\r\n$1\r\na\r\n+b\r\n:3\r\n");
  const std::vector<std::string> expected = {"a", "b", "3"};
  BOOST_TEST(*v == expected, boost::test_tools::per_element());
  BOOST_TEST(adapt_one<std::vector<int>>("*0\r\n")->empty());
  BOOST_TEST(adapt_one<std::vector<int>>("~2\r\n:1\r\n:2\r\n")->size() == 2u);
  // A map read as a flat list (HGETALL into a vector).
  BOOST_TEST(adapt_one<std::vector<std::string>>("%1\r\n+k\r\n+v\r\n")->size() == 2u);
  auto nested = adapt_one<std::vector<std::vector<int>>>("*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n:3\r\n");
  BOOST_REQUIRE(nested.has_value());
  BOOST_TEST((*nested)[0][1] == 2);
  BOOST_TEST((*nested)[1][0] == 3);
  auto with_nulls = adapt_one<std::vector<std::optional<std::string>>>("*2\r\n$-1\r\n$1\r\nx\r\n");
  BOOST_TEST(!(*with_nulls)[0].has_value());
  BOOST_TEST(*(*with_nulls)[1] == "x");

  BOOST_TEST(error_of<std::vector<int>>("+OK\r\n") == error::type_mismatch);
  BOOST_TEST(error_of<std::vector<int>>("*-1\r\n") == error::unexpected_null);
  BOOST_TEST(error_of<std::vector<int>>("*2\r\n:1\r\n_\r\n") == error::unexpected_null);
  BOOST_TEST(error_of<std::vector<int>>("*2\r\n:1\r\n*1\r\n:2\r\n") == error::type_mismatch);
  // An error element fails the whole vector, with its text.
  auto err = adapt_one<std::vector<int>>("*2\r\n:1\r\n-ERR inner\r\n");
  BOOST_REQUIRE(err.has_error());
  BOOST_TEST(err.error().message == "ERR inner");
}

BOOST_AUTO_TEST_CASE(sets) {
  auto s = adapt_one<std::set<std::string>>("~3\r\n+b\r\n+a\r\n+b\r\n");
  BOOST_TEST(s->size() == 2u);
  BOOST_TEST(*s->begin() == "a");
  auto u = adapt_one<std::unordered_set<int>>("*2\r\n:1\r\n:2\r\n");
  BOOST_TEST(u->count(2) == 1u);
  BOOST_TEST(error_of<std::set<int>>("~1\r\n*0\r\n") == error::type_mismatch);
}

BOOST_AUTO_TEST_CASE(maps_from_all_three_wire_forms) {
  using map_t = std::map<std::string, std::string>;
  const map_t expected = {{"a", "1"}, {"b", "2"}};
  // RESP3 map, RESP2 flat array, array of pairs.
  BOOST_TEST((*adapt_one<map_t>("%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n") == expected));
  BOOST_TEST((*adapt_one<map_t>("*4\r\n+a\r\n:1\r\n+b\r\n:2\r\n") == expected));
  BOOST_TEST((*adapt_one<map_t>("*2\r\n*2\r\n+a\r\n:1\r\n*2\r\n+b\r\n:2\r\n") == expected));
  BOOST_TEST(adapt_one<map_t>("%0\r\n")->empty());

  auto u = adapt_one<std::unordered_map<std::string, double>>("%1\r\n+x\r\n,2.5\r\n");
  BOOST_TEST(u->at("x") == 2.5);

  // ZRANGE ... WITHSCORES in RESP3: an array of [member, score].
  using scores = std::vector<std::pair<std::string, double>>;
  auto z = adapt_one<scores>("*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n");
  BOOST_REQUIRE(z->size() == 2u);
  BOOST_TEST((*z)[1].first == "b");
  BOOST_TEST((*z)[1].second == 2.5);
  // ... and in RESP2: flat.
  auto flat = adapt_one<scores>("*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$3\r\n2.5\r\n");
  BOOST_TEST((*flat)[1].second == 2.5);

  // Values of any type: XREADGROUP in RESP3, stream -> entries -> [id, fields].
  using fields = std::vector<std::pair<std::string, std::string>>;
  using entries = std::vector<std::pair<std::string, fields>>;
  auto x = adapt_one<std::map<std::string, entries>>(
      "%1\r\n$6\r\norders\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$2\r\nid\r\n$2\r\n42\r\n$1\r\nn\r\n"
      "$1\r\n1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$2\r\nid\r\n$2\r\n43\r\n");
  BOOST_REQUIRE(x.has_value());
  const entries& e = x->at("orders");
  BOOST_REQUIRE(e.size() == 2u);
  BOOST_TEST(e[0].first == "1-0");
  BOOST_TEST(e[0].second.size() == 2u);
  BOOST_TEST(e[0].second[1].first == "n");
  BOOST_TEST(e[1].second[0].second == "43");

  BOOST_TEST(error_of<map_t>("*3\r\n+a\r\n+b\r\n+c\r\n") == error::size_mismatch);
  BOOST_TEST(error_of<map_t>("*1\r\n*3\r\n+a\r\n+b\r\n+c\r\n") == error::size_mismatch);
  BOOST_TEST(error_of<map_t>("%1\r\n*1\r\n+k\r\n+v\r\n") == error::type_mismatch);  // key
  BOOST_TEST(error_of<map_t>(":1\r\n") == error::type_mismatch);
  using int_map = std::map<std::string, int>;
  BOOST_TEST(error_of<int_map>("%1\r\n+k\r\n+v\r\n") == error::not_a_number);
}

BOOST_AUTO_TEST_CASE(tuples_and_pairs) {
  using claim = std::tuple<std::vector<std::string>, std::int64_t, std::optional<std::int64_t>>;
  auto c = adapt_one<claim>("*3\r\n*2\r\n$2\r\nt1\r\n$2\r\nt2\r\n:1700000000\r\n_\r\n");
  BOOST_REQUIRE(c.has_value());
  BOOST_TEST(std::get<0>(*c).size() == 2u);
  BOOST_TEST(std::get<1>(*c) == 1700000000);
  BOOST_TEST(!std::get<2>(*c).has_value());

  auto p = adapt_one<std::pair<std::string, int>>("*2\r\n+a\r\n:1\r\n");
  BOOST_TEST(p->first == "a");
  BOOST_TEST(p->second == 1);

  auto err = adapt_one<std::pair<int, int>>("*3\r\n:1\r\n:2\r\n:3\r\n");
  BOOST_REQUIRE(err.has_error());
  BOOST_TEST(err.error().code == error::size_mismatch);
  BOOST_TEST(err.error().message == "expected 2 elements, got 3");
  using int_pair = std::pair<int, int>;
  BOOST_TEST(error_of<int_pair>("*2\r\n:1\r\n+x\r\n") == error::not_a_number);
}

BOOST_AUTO_TEST_CASE(nested_results_keep_errors_local) {
  // EXEC whose second command failed: the other element keeps its value.
  using exec = std::tuple<result<std::string>, result<std::int64_t>, result<std::int64_t>>;
  auto r = adapt_one<exec>("*3\r\n+OK\r\n-ERR value is not an integer\r\n:5\r\n");
  BOOST_REQUIRE(r.has_value());
  BOOST_TEST(*std::get<0>(*r) == "OK");
  BOOST_REQUIRE(std::get<1>(*r).has_error());
  BOOST_TEST(std::get<1>(*r).error().message == "ERR value is not an integer");
  BOOST_TEST(*std::get<2>(*r) == 5);

  auto v = adapt_one<std::vector<result<int>>>("*3\r\n:1\r\n*1\r\n:9\r\n:3\r\n");
  BOOST_REQUIRE(v->size() == 3u);
  BOOST_TEST(*(*v)[0] == 1);
  BOOST_TEST((*v)[1].error().code == error::type_mismatch);
  BOOST_TEST(*(*v)[2] == 3);  // the mismatched element's children did not leak into it
}

BOOST_AUTO_TEST_CASE(generic_node_tree) {
  auto t = adapt_one<std::vector<resp3::node>>("*2\r\n%1\r\n+k\r\n-ERR in tree\r\n:7\r\n");
  BOOST_REQUIRE(t->size() == 5u);
  const auto& nodes = *t;
  BOOST_TEST(static_cast<int>(nodes[0].data_type) == static_cast<int>(resp3::type::array));
  BOOST_TEST(nodes[0].aggregate_size == 2u);
  BOOST_TEST(nodes[1].aggregate_size == 1u);
  BOOST_TEST(nodes[2].depth == 2u);
  BOOST_TEST(nodes[3].value == "ERR in tree");  // nested errors are data
  BOOST_TEST(nodes[4].value == "7");
  BOOST_TEST(nodes[4].depth == 1u);
}

BOOST_AUTO_TEST_CASE(attributes_are_skipped) {
  BOOST_TEST(*adapt_one<int>("|1\r\n+ttl\r\n*1\r\n:9\r\n:42\r\n") == 42);
  auto v = adapt_one<std::vector<int>>("*2\r\n:1\r\n|1\r\n+a\r\n%1\r\n+x\r\n+y\r\n:2\r\n");
  const std::vector<int> expected = {1, 2};
  BOOST_TEST(*v == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_protocol_error_is_reported_not_stored) {
  result<int> r;
  error_code ec;
  redis::adapt("*2\r\n:1\r\n", r, ec);
  BOOST_TEST(ec == error::incomplete_message);
  ec.clear();
  redis::adapt(":x\r\n", r, ec);
  BOOST_TEST(ec == error::invalid_integer);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(any_adapter_for_the_connection)

namespace {
// Frames `wire` and delivers its replies in order, the way the connection does.
error_code deliver_all(std::string_view wire, redis::any_adapter adapter) {
  resp3::framer framer;
  error_code ec;
  std::size_t index = 0;
  while (auto msg = framer.next(wire, ec)) {
    adapter.deliver(index++, msg->data, ec);
    if (ec) {
      break;
    }
    wire.remove_prefix(msg->size());
  }
  return ec;
}
}  // namespace

BOOST_AUTO_TEST_CASE(pipeline_response) {
  redis::response<redis::ignore_t, std::optional<std::string>, std::int64_t, std::string> resp;
  redis::any_adapter adapter(resp);
  BOOST_TEST(adapter.size() == 4u);
  error_code ec = deliver_all("+OK\r\n$-1\r\n$2\r\nab\r\n-WRONGTYPE bad\r\n", adapter);
  BOOST_TEST(!ec);
  BOOST_TEST(std::get<0>(resp).has_value());
  BOOST_TEST(!std::get<1>(resp)->has_value());
  BOOST_TEST(std::get<2>(resp).error().code == error::not_a_number);
  BOOST_TEST(std::get<3>(resp).error().message == "WRONGTYPE bad");
  auto first = redis::first_error(resp);
  BOOST_REQUIRE(first.has_value());
  BOOST_TEST(first->code == error::not_a_number);
}

BOOST_AUTO_TEST_CASE(more_replies_than_slots) {
  redis::response<std::string> resp;
  error_code ec = deliver_all("+a\r\n+b\r\n", redis::any_adapter(resp));
  BOOST_TEST(ec == error::response_too_small);
  BOOST_TEST(*std::get<0>(resp) == "a");
  redis::response<> none;
  BOOST_TEST(redis::any_adapter(none).size() == 0u);
}

BOOST_AUTO_TEST_CASE(generic_response_takes_every_reply) {
  redis::generic_response resp;
  redis::any_adapter adapter(resp);
  BOOST_TEST(adapter.size() == redis::any_adapter::unbounded);
  error_code ec = deliver_all("+OK\r\n*2\r\n:1\r\n:2\r\n-ERR kept\r\n", adapter);
  BOOST_TEST(!ec);
  BOOST_REQUIRE(resp.size() == 5u);
  BOOST_TEST(resp[0].value == "OK");
  BOOST_TEST(resp[1].depth == 0u);
  BOOST_TEST(resp[3].depth == 1u);
  BOOST_TEST(static_cast<int>(resp[4].data_type) == static_cast<int>(resp3::type::simple_error));
}

BOOST_AUTO_TEST_CASE(ignore_takes_everything) {
  redis::any_adapter adapter;
  BOOST_TEST(adapter.size() == redis::any_adapter::unbounded);
  BOOST_TEST(!deliver_all("+OK\r\n-ERR x\r\n*1\r\n:1\r\n", adapter));
}

BOOST_AUTO_TEST_CASE(slots_are_reset_on_reuse) {
  redis::response<std::vector<int>> resp;
  BOOST_TEST(!deliver_all("*2\r\n:1\r\n:2\r\n", resp));
  BOOST_TEST(std::get<0>(resp)->size() == 2u);
  BOOST_TEST(!deliver_all("*1\r\n:3\r\n", resp));
  BOOST_REQUIRE(std::get<0>(resp).has_value());
  BOOST_TEST(std::get<0>(resp)->size() == 1u);
  BOOST_TEST(!deliver_all("-ERR now\r\n", resp));
  BOOST_TEST(std::get<0>(resp).has_error());
  BOOST_TEST(!deliver_all("*0\r\n", resp));
  BOOST_TEST(std::get<0>(resp).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
