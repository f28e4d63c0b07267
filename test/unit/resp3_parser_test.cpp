// The RESP3 parser on its own: every type, attributes, RESP2 nulls, incremental input at
// every split point, the limits, and malformed input.

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <corvo/redis/error.hpp>
#include <corvo/redis/resp3/parser.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace resp3 = corvo::redis::resp3;
using namespace std::string_view_literals;
using boost::system::error_code;
using corvo::redis::error;

// Compared with error codes, which print themselves.
BOOST_TEST_DONT_PRINT_LOG_VALUE(corvo::redis::error)

namespace {

// "type[size]@depth=value" per node, space separated: failures show what differed.
std::string describe(const resp3::node_view& n) {
  std::string s(resp3::to_string(n.data_type));
  if (resp3::is_aggregate(n.data_type)) {
    s += "[" + std::to_string(n.aggregate_size) + "]";
  }
  s += "@" + std::to_string(n.depth);
  if (!resp3::is_aggregate(n.data_type) && n.data_type != resp3::type::null) {
    s += "=" + std::string(n.value);
  }
  return s;
}

struct parsed {
  std::string nodes;
  std::size_t size = 0;
  resp3::type root = resp3::type::null;
  error_code ec;
};

// Parses the first message of `wire`, all bytes available at once.
parsed parse_one(std::string_view wire, const resp3::parser_limits& limits = {}) {
  parsed out;
  resp3::parser p(limits);
  while (!p.done()) {
    auto n = p.next(wire, out.ec);
    if (!n) {
      return out;
    }
    if (!out.nodes.empty()) {
      out.nodes += ' ';
    }
    out.nodes += describe(*n);
  }
  out.size = p.consumed();
  out.root = p.root_type();
  return out;
}

// Parses the first message of `wire` with the bytes arriving in pieces: first `split`
// bytes, then one more byte per call. The buffer is a fresh copy on every call, so any
// pointer the parser kept would dangle (ASan would notice).
parsed parse_incrementally(std::string_view wire, std::size_t split,
                           const resp3::parser_limits& limits = {}) {
  parsed out;
  resp3::parser p(limits);
  std::size_t available = std::min(split, wire.size());
  while (!p.done()) {
    const std::string buffer(wire.substr(0, available));
    auto n = p.next(buffer, out.ec);
    if (out.ec) {
      return out;
    }
    if (!n) {
      if (available == wire.size()) {
        return out;  // incomplete even with everything
      }
      ++available;
      continue;
    }
    if (!out.nodes.empty()) {
      out.nodes += ' ';
    }
    out.nodes += describe(*n);
  }
  out.size = p.consumed();
  out.root = p.root_type();
  return out;
}

struct sample {
  std::string_view wire;
  std::string_view nodes;
  resp3::type root;
};

// One reply of every type, and the shapes that matter (nesting, empty aggregates, RESP2
// nulls, attributes, binary-safe bulks).
const std::vector<sample>& samples() {
  using t = resp3::type;
  static const std::vector<sample> all = {
      {"+OK\r\n", "simple_string@0=OK", t::simple_string},
      {"+\r\n", "simple_string@0=", t::simple_string},
      {"-ERR unknown command 'x'\r\n", "simple_error@0=ERR unknown command 'x'", t::simple_error},
      {":0\r\n", "integer@0=0", t::integer},
      {":-9223372036854775808\r\n", "integer@0=-9223372036854775808", t::integer},
      {":+12\r\n", "integer@0=+12", t::integer},
      {",3.25\r\n", "double@0=3.25", t::double_},
      {",inf\r\n", "double@0=inf", t::double_},
      {",-inf\r\n", "double@0=-inf", t::double_},
      {",nan\r\n", "double@0=nan", t::double_},
      {",1.5e-3\r\n", "double@0=1.5e-3", t::double_},
      {",-2\r\n", "double@0=-2", t::double_},
      {"#t\r\n", "boolean@0=t", t::boolean},
      {"#f\r\n", "boolean@0=f", t::boolean},
      {"(3492890328409238509324850943850943825024385\r\n",
       "big_number@0=3492890328409238509324850943850943825024385", t::big_number},
      {"(-12\r\n", "big_number@0=-12", t::big_number},
      {"_\r\n", "null@0", t::null},
      {"$-1\r\n", "null@0", t::null},
      {"*-1\r\n", "null@0", t::null},
      {"$5\r\nhello\r\n", "bulk_string@0=hello", t::bulk_string},
      {"$0\r\n\r\n", "bulk_string@0=", t::bulk_string},
      {"$6\r\na\r\n\0b\n\r\n"sv, "bulk_string@0=a\r\n\0b\n"sv, t::bulk_string},
      {"!21\r\nSYNTAX invalid syntax\r\n", "bulk_error@0=SYNTAX invalid syntax", t::bulk_error},
      {"=15\r\ntxt:Some string\r\n", "verbatim_string@0=txt:Some string", t::verbatim_string},
      {"*0\r\n", "array[0]@0", t::array},
      {"*3\r\n:1\r\n$3\r\nfoo\r\n_\r\n", "array[3]@0 integer@1=1 bulk_string@1=foo null@1",
       t::array},
      {"*2\r\n*1\r\n*0\r\n:2\r\n", "array[2]@0 array[1]@1 array[0]@2 integer@1=2", t::array},
      {"%2\r\n+first\r\n:1\r\n+second\r\n*2\r\n#t\r\n#f\r\n",
       "map[2]@0 simple_string@1=first integer@1=1 simple_string@1=second array[2]@1 "
       "boolean@2=t boolean@2=f",
       t::map},
      {"%0\r\n", "map[0]@0", t::map},
      {"~3\r\n+a\r\n+b\r\n+c\r\n", "set[3]@0 simple_string@1=a simple_string@1=b simple_string@1=c",
       t::set},
      {">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
       "push[3]@0 bulk_string@1=message bulk_string@1=ch bulk_string@1=hi", t::push},
      // An attribute in front of the reply it describes: not counted as the reply.
      {"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:2\r\n",
       "attribute[1]@0 simple_string@1=key-popularity map[1]@1 bulk_string@2=a double@2=0.19 "
       "array[1]@0 integer@1=2",
       t::array},
      // An attribute inside an array does not take an element's place.
      {"*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n",
       "array[2]@0 integer@1=1 attribute[1]@1 simple_string@2=ttl integer@2=3600 integer@1=2",
       t::array},
      {"|0\r\n+OK\r\n", "attribute[0]@0 simple_string@0=OK", t::simple_string},
  };
  return all;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(resp3_parser)

BOOST_AUTO_TEST_CASE(parses_every_type) {
  for (const sample& s : samples()) {
    BOOST_TEST_CONTEXT("wire " << s.wire) {
      parsed p = parse_one(s.wire);
      BOOST_TEST(!p.ec);
      BOOST_TEST(p.nodes == s.nodes);
      BOOST_TEST(p.size == s.wire.size());
      BOOST_TEST(static_cast<int>(p.root) == static_cast<int>(s.root));
    }
  }
}

BOOST_AUTO_TEST_CASE(every_split_point_gives_the_same_nodes) {
  for (const sample& s : samples()) {
    for (std::size_t split = 0; split <= s.wire.size(); ++split) {
      BOOST_TEST_CONTEXT("wire " << s.wire << " split " << split) {
        parsed p = parse_incrementally(s.wire, split);
        BOOST_TEST(!p.ec);
        BOOST_TEST(p.nodes == s.nodes);
        BOOST_TEST(p.size == s.wire.size());
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(stops_at_the_end_of_the_first_message) {
  const std::string wire = "*1\r\n:1\r\n+next\r\n";
  parsed p = parse_one(wire);
  BOOST_TEST(!p.ec);
  BOOST_TEST(p.size == 8u);
  BOOST_TEST(p.nodes == "array[1]@0 integer@1=1");
}

BOOST_AUTO_TEST_CASE(truncated_input_needs_more_without_error) {
  const std::string wire = "*2\r\n$5\r\nhello\r\n%1\r\n+k\r\n:1\r\n";
  for (std::size_t len = 0; len < wire.size(); ++len) {
    BOOST_TEST_CONTEXT("length " << len) {
      resp3::parser p;
      error_code ec;
      const std::string_view prefix(wire.data(), len);
      while (p.next(prefix, ec)) {
      }
      BOOST_TEST(!ec);
      BOOST_TEST(!p.done());
      BOOST_TEST(p.consumed() <= len);
    }
  }
}

BOOST_AUTO_TEST_CASE(nodes_view_the_buffer_without_copies) {
  const std::string wire = "$5\r\nhello\r\n";
  resp3::parser p;
  error_code ec;
  auto n = p.next(wire, ec);
  BOOST_REQUIRE(n);
  BOOST_TEST(static_cast<const void*>(n->value.data()) ==
             static_cast<const void*>(wire.data() + 4));
}

BOOST_AUTO_TEST_CASE(parse_reports_every_node_and_the_size) {
  const std::string wire = "*2\r\n+a\r\n+b\r\n";
  std::vector<std::string> values;
  error_code ec;
  std::size_t size = resp3::parse(
      wire, [&](const resp3::node_view& n) { values.emplace_back(n.value); }, ec);
  BOOST_TEST(!ec);
  BOOST_TEST(size == wire.size());
  BOOST_TEST(values.size() == 3u);
  BOOST_TEST(values[2] == "b");
}

BOOST_AUTO_TEST_CASE(parse_of_a_partial_message_is_an_error) {
  error_code ec;
  std::size_t size = resp3::parse(
      "*2\r\n+a\r\n", [](const resp3::node_view&) {}, ec);
  BOOST_TEST(size == 0u);
  BOOST_TEST(ec == error::incomplete_message);
}

BOOST_AUTO_TEST_CASE(reset_starts_a_new_message) {
  resp3::parser p;
  error_code ec;
  BOOST_REQUIRE(p.next("*2\r\n", ec));
  p.reset();
  auto n = p.next(":7\r\n", ec);
  BOOST_REQUIRE(n);
  BOOST_TEST(n->value == "7");
  BOOST_TEST(n->depth == 0u);
  BOOST_TEST(p.done());
}

// --- limits ------------------------------------------------------------------------------

namespace {
std::string nested_arrays(std::size_t levels) {
  std::string s;
  for (std::size_t i = 0; i < levels; ++i) {
    s += "*1\r\n";
  }
  return s + ":1\r\n";
}
}  // namespace

BOOST_AUTO_TEST_CASE(depth_limit) {
  resp3::parser_limits limits;
  limits.max_depth = 3;
  // Three arrays: the leaf is at depth 3, allowed.
  parsed ok = parse_one(nested_arrays(3), limits);
  BOOST_TEST(!ok.ec);
  BOOST_TEST(ok.nodes == "array[1]@0 array[1]@1 array[1]@2 integer@3=1");
  BOOST_TEST(parse_one(nested_arrays(4), limits).ec == error::nesting_too_deep);
  // The default limit, and the hard capacity however large the configured limit.
  BOOST_TEST(!parse_one(nested_arrays(16)).ec);
  BOOST_TEST(parse_one(nested_arrays(17)).ec == error::nesting_too_deep);
  limits.max_depth = 1000;
  BOOST_TEST(!parse_one(nested_arrays(resp3::parser_limits::depth_capacity), limits).ec);
  BOOST_TEST(parse_one(nested_arrays(resp3::parser_limits::depth_capacity + 1), limits).ec ==
             error::nesting_too_deep);
  // Empty aggregates push nothing, so they do not count against the depth.
  limits.max_depth = 1;
  BOOST_TEST(!parse_one("*1\r\n*0\r\n", limits).ec);
}

BOOST_AUTO_TEST_CASE(hostile_depth_is_rejected_while_streaming) {
  // A megabyte of "*1\r\n" arriving in pieces: rejected at the 17th level, long before
  // the end, with constant memory.
  std::string wire = nested_arrays(250000);
  parsed p = parse_incrementally(wire, 0);
  BOOST_TEST(p.ec == error::nesting_too_deep);
}

BOOST_AUTO_TEST_CASE(bulk_length_limit) {
  resp3::parser_limits limits;
  limits.max_bulk_length = 10;
  BOOST_TEST(!parse_one("$10\r\n0123456789\r\n", limits).ec);
  // Rejected on the header alone: no need to wait for the payload.
  BOOST_TEST(parse_one("$11\r\n", limits).ec == error::bulk_too_large);
  BOOST_TEST(parse_one("!11\r\n", limits).ec == error::bulk_too_large);
  BOOST_TEST(parse_one("=11\r\n", limits).ec == error::bulk_too_large);
  // The default is Redis's proto-max-bulk-len, 512 MiB.
  BOOST_TEST(parse_one("$536870913\r\n").ec == error::bulk_too_large);
  parsed big = parse_one("$536870912\r\n");
  BOOST_TEST(!big.ec);  // allowed, just incomplete
}

BOOST_AUTO_TEST_CASE(aggregate_size_limit) {
  resp3::parser_limits limits;
  limits.max_aggregate_size = 4;
  BOOST_TEST(!parse_one("*4\r\n_\r\n_\r\n_\r\n_\r\n", limits).ec);
  BOOST_TEST(parse_one("*5\r\n", limits).ec == error::aggregate_too_large);
  BOOST_TEST(parse_one("%5\r\n", limits).ec == error::aggregate_too_large);
  BOOST_TEST(parse_one("~5\r\n", limits).ec == error::aggregate_too_large);
  BOOST_TEST(parse_one(">5\r\n", limits).ec == error::aggregate_too_large);
  BOOST_TEST(parse_one("|5\r\n", limits).ec == error::aggregate_too_large);
  BOOST_TEST(parse_one("*4294967296\r\n").ec == error::aggregate_too_large);
}

BOOST_AUTO_TEST_CASE(message_size_limit) {
  resp3::parser_limits limits;
  limits.max_message_size = 64;
  // 21 elements need at least 63 more bytes after the 5-byte header: cannot fit in 64.
  BOOST_TEST(parse_one("*21\r\n", limits).ec == error::message_too_large);
  BOOST_TEST(parse_one("%11\r\n", limits).ec == error::message_too_large);
  // A bulk that would end past the limit, known from its header.
  BOOST_TEST(parse_one("$58\r\n", limits).ec == error::message_too_large);
  BOOST_TEST(!parse_one("$56\r\n", limits).ec);
  // A line that never ends: rejected once the buffer passes the limit.
  BOOST_TEST(!parse_one(std::string(64, '+'), limits).ec);
  BOOST_TEST(parse_one(std::string(65, '+'), limits).ec == error::message_too_large);
  // Many small elements adding up.
  std::string wire = "*15\r\n";
  for (int i = 0; i < 15; ++i) {
    wire += ":1\r\n";
  }
  BOOST_TEST(wire.size() == 65u);
  BOOST_TEST(parse_one(wire, limits).ec == error::message_too_large);
}

// --- malformed input ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(malformed_input_gives_the_right_error) {
  struct bad {
    std::string_view wire;
    error expected;
  };
  const bad cases[] = {
      {"?\r\n", error::invalid_type_byte},
      {"OK\r\n", error::invalid_type_byte},
      {"*2\r\n:1\r\nx\r\n", error::invalid_type_byte},
      {std::string_view("\0", 1), error::invalid_type_byte},
      {"$abc\r\n", error::invalid_length},
      {"$\r\n", error::invalid_length},
      {"$-2\r\n", error::invalid_length},
      {"$+3\r\nabc\r\n", error::invalid_length},
      {"$ 3\r\nabc\r\n", error::invalid_length},
      {"*-5\r\n", error::invalid_length},
      {"%-1\r\n", error::invalid_length},
      {"~-1\r\n", error::invalid_length},
      {"!-1\r\n", error::invalid_length},
      {"=-1\r\n", error::invalid_length},
      {"*1x\r\n", error::invalid_length},
      {"$99999999999999999999999\r\n", error::invalid_length},
      {"$1234567890123456789012345", error::invalid_length},  // no CR in sight
      {"$9999999999\r\n", error::bulk_too_large},
      {"$3\r\nabcXY", error::missing_crlf},
      {"$3\r\nabc\n\r", error::missing_crlf},
      {"+OK\rX", error::missing_crlf},
      {"+OK\r\r\n", error::missing_crlf},
      {"_x\r\n", error::missing_crlf},
      {"_x", error::missing_crlf},
      {":12a\r\n", error::invalid_integer},
      {":\r\n", error::invalid_integer},
      {":9223372036854775808\r\n", error::invalid_integer},
      {":+-1\r\n", error::invalid_integer},
      {":1234567890123456789012345", error::invalid_integer},
      {",abc\r\n", error::invalid_double},
      {",\r\n", error::invalid_double},
      {",1.5.\r\n", error::invalid_double},
      {", 1\r\n", error::invalid_double},
      {"#x\r\n", error::invalid_boolean},
      {"#tt\r\n", error::invalid_boolean},
      {"#\r\n", error::invalid_boolean},
      {"(12a\r\n", error::invalid_big_number},
      {"(\r\n", error::invalid_big_number},
      {"=3\r\ntxt\r\n", error::invalid_verbatim_string},
      {"=4\r\ntxt-\r\n", error::invalid_verbatim_string},
      {"$?\r\n", error::streamed_type_unsupported},
      {"*?\r\n", error::streamed_type_unsupported},
  };
  for (const bad& b : cases) {
    BOOST_TEST_CONTEXT("wire " << b.wire) {
      BOOST_TEST(parse_one(b.wire).ec == b.expected);
      // The same error whatever the read boundaries.
      BOOST_TEST(parse_incrementally(b.wire, 0).ec == b.expected);
    }
  }
}

BOOST_AUTO_TEST_CASE(errors_are_protocol_errors_and_sticky) {
  resp3::parser p;
  error_code ec;
  BOOST_TEST(!p.next("?", ec));
  BOOST_TEST(ec == error::invalid_type_byte);
  BOOST_TEST(corvo::redis::is_protocol_error(ec));
  BOOST_TEST(!corvo::redis::is_reply_error(ec));
  ec.clear();
  // Even valid bytes now: the stream is out of step and must not be trusted.
  BOOST_TEST(!p.next("+OK\r\n", ec));
  BOOST_TEST(ec == error::invalid_type_byte);
  p.reset();
  ec.clear();
  BOOST_TEST(p.next("+OK\r\n", ec).has_value());
  BOOST_TEST(!ec);
}

BOOST_AUTO_TEST_CASE(error_category_names_codes) {
  error_code ec = error::nesting_too_deep;
  BOOST_TEST(std::string(ec.category().name()) == "corvo.redis");
  BOOST_TEST(ec.message() == "RESP3: aggregates nested too deep");
  BOOST_TEST(corvo::redis::is_connection_error(error::connection_lost));
  BOOST_TEST(corvo::redis::is_reply_error(error::server_error));
}

BOOST_AUTO_TEST_SUITE_END()
