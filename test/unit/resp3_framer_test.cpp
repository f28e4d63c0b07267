// The framer: complete messages out of a read buffer, whatever the read boundaries, push
// told apart from reply, and protocol errors stopping the stream.

#include <boost/test/unit_test.hpp>
#include <corvo/redis/error.hpp>
#include <corvo/redis/resp3/framer.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace resp3 = corvo::redis::resp3;
using boost::system::error_code;
using corvo::redis::error;

// Compared with error codes, which print themselves.
BOOST_TEST_DONT_PRINT_LOG_VALUE(corvo::redis::error)

namespace {

// A recorded RESP3 session: HELLO, SET, SUBSCRIBE confirmation and a message (pushes),
// XREADGROUP, ZRANGE WITHSCORES, an error, a null, an attribute, CLIENT INFO verbatim.
const std::string& recorded_stream() {
  static const std::string wire =
      "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.11\r\n$5\r\nproto\r\n"
      ":3\r\n$2\r\nid\r\n:5\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
      "$7\r\nmodules\r\n*0\r\n"
      "+OK\r\n"
      ">3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
      ">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$11\r\nhello world\r\n"
      "%1\r\n$6\r\norders\r\n*2\r\n*2\r\n$15\r\n1700000000000-0\r\n*4\r\n$2\r\nid\r\n$2\r\n42\r\n"
      "$6\r\namount\r\n$5\r\n12.50\r\n*2\r\n$15\r\n1700000000001-0\r\n*2\r\n$2\r\nid\r\n$"
      "2\r\n43\r\n"
      "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n"
      "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
      "_\r\n"
      "|1\r\n+ttl\r\n:10\r\n:7\r\n"
      "|1\r\n+origin\r\n+tracking\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n"
      "=25\r\ntxt:id=5 addr=127.0.0.1\r\n\r\n"
      "$-1\r\n";
  return wire;
}

struct framed {
  std::vector<std::string> messages;
  std::vector<bool> pushes;
  error_code ec;
};

// Feeds `wire` in chunks whose sizes come from `next_chunk`, like a connection: append
// what was read, frame as many messages as possible, erase them from the front.
template <class NextChunk>
framed frame_stream(std::string_view wire, NextChunk next_chunk,
                    const resp3::parser_limits& limits = {}) {
  framed out;
  resp3::framer framer(limits);
  std::string buffer;
  std::size_t fed = 0;
  for (;;) {
    auto msg = framer.next(buffer, out.ec);
    if (out.ec) {
      return out;
    }
    if (msg) {
      out.messages.emplace_back(msg->data);
      out.pushes.push_back(msg->is_push());
      buffer.erase(0, msg->size());
      continue;
    }
    if (fed == wire.size()) {
      return out;
    }
    const std::size_t n = std::min(next_chunk(), wire.size() - fed);
    buffer.append(wire.substr(fed, n));
    fed += n;
  }
}

framed frame_all_at_once(std::string_view wire) {
  return frame_stream(wire, [&] { return wire.size(); });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(resp3_framer)

BOOST_AUTO_TEST_CASE(frames_the_recorded_stream) {
  framed f = frame_all_at_once(recorded_stream());
  BOOST_TEST(!f.ec);
  BOOST_REQUIRE(f.messages.size() == 12u);
  BOOST_TEST(f.messages[1] == "+OK\r\n");
  BOOST_TEST(f.messages[6] ==
             "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  const std::vector<bool> pushes = {false, false, true,  true, false, false,
                                    false, false, false, true, false, false};
  BOOST_TEST(f.pushes == pushes, boost::test_tools::per_element());
  std::string joined;
  for (const auto& m : f.messages) {
    joined += m;
  }
  BOOST_TEST(joined == recorded_stream());
}

BOOST_AUTO_TEST_CASE(every_split_point_gives_the_same_messages) {
  const std::string& wire = recorded_stream();
  const framed expected = frame_all_at_once(wire);
  for (std::size_t split = 0; split <= wire.size(); ++split) {
    BOOST_TEST_CONTEXT("split " << split) {
      bool first = true;
      framed f = frame_stream(wire, [&] {
        const std::size_t n = first ? split : wire.size();
        first = false;
        return n;
      });
      BOOST_TEST(!f.ec);
      BOOST_TEST(f.messages == expected.messages, boost::test_tools::per_element());
    }
  }
}

BOOST_AUTO_TEST_CASE(byte_by_byte_and_random_chunks) {
  const std::string& wire = recorded_stream();
  const framed expected = frame_all_at_once(wire);
  framed bytes = frame_stream(wire, [] { return std::size_t{1}; });
  BOOST_TEST(!bytes.ec);
  BOOST_TEST(bytes.messages == expected.messages, boost::test_tools::per_element());

  std::mt19937 rng(20240601);
  for (int round = 0; round < 200; ++round) {
    std::uniform_int_distribution<std::size_t> size(1, 1 + static_cast<std::size_t>(round));
    framed f = frame_stream(wire, [&] { return size(rng); });
    BOOST_TEST(!f.ec);
    BOOST_TEST(f.messages == expected.messages, boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(two_splits_of_each_message) {
  // Every pair of split points inside each message (and the neighbour bytes).
  const std::string& wire = recorded_stream();
  const framed expected = frame_all_at_once(wire);
  for (const std::string& msg : expected.messages) {
    const std::string two = msg + "+OK\r\n";
    for (std::size_t a = 0; a <= two.size(); ++a) {
      for (std::size_t b = a; b <= two.size(); ++b) {
        int call = 0;
        framed f = frame_stream(two, [&]() -> std::size_t {
          switch (call++) {
            case 0:
              return a;
            case 1:
              return b - a;
            default:
              return two.size();
          }
        });
        BOOST_REQUIRE(!f.ec);
        BOOST_REQUIRE(f.messages.size() == 2u);
        BOOST_TEST(f.messages[0] == msg);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(incomplete_message_reports_progress) {
  resp3::framer framer;
  error_code ec;
  const std::string wire = "*3\r\n:1\r\n:2\r\n";
  BOOST_TEST(!framer.next(wire, ec));
  BOOST_TEST(!ec);
  BOOST_TEST(framer.pending() == wire.size());
  const std::string more = wire + ":3\r\n+next\r\n";
  auto msg = framer.next(more, ec);
  BOOST_REQUIRE(msg);
  BOOST_TEST(msg->size() == wire.size() + 4);
  BOOST_TEST(static_cast<int>(msg->kind) == static_cast<int>(resp3::type::array));
  BOOST_TEST(framer.pending() == 0u);
}

BOOST_AUTO_TEST_CASE(an_attribute_in_front_of_a_push_is_still_a_push) {
  resp3::framer framer;
  error_code ec;
  auto msg = framer.next("|1\r\n+a\r\n+b\r\n>1\r\n+x\r\n", ec);
  BOOST_REQUIRE(msg);
  BOOST_TEST(msg->is_push());
}

BOOST_AUTO_TEST_CASE(a_protocol_error_stops_the_stream) {
  const std::string wire = "+OK\r\n:1\r\n*2\r\n:1\r\n?oops\r\n+later\r\n";
  framed f = frame_stream(wire, [] { return std::size_t{3}; });
  BOOST_TEST(f.ec == error::invalid_type_byte);
  BOOST_TEST(f.messages.size() == 2u);  // the two before it, nothing after

  resp3::framer framer;
  error_code ec;
  BOOST_TEST(!framer.next("?", ec));
  ec.clear();
  BOOST_TEST(!framer.next("+OK\r\n", ec));
  BOOST_TEST(ec == error::invalid_type_byte);
  framer.reset();
  ec.clear();
  BOOST_TEST(framer.next("+OK\r\n", ec).has_value());
}

BOOST_AUTO_TEST_CASE(a_buffer_beyond_the_message_limit_is_an_error) {
  resp3::parser_limits limits;
  limits.max_message_size = 1000;
  // Announces few enough elements to pass the header check, but they are larger than the
  // minimum: rejected once the buffered part passes the limit, not at the end.
  std::string flat = "*300\r\n";
  for (int i = 0; i < 300; ++i) {
    flat += "$1\r\nx\r\n";  // 7 bytes each: 2100 bytes
  }
  framed f = frame_stream(
      flat, [] { return std::size_t{64}; }, limits);
  BOOST_TEST(f.ec == error::message_too_large);
  BOOST_TEST(f.messages.empty());
  limits.max_message_size = 4096;
  f = frame_stream(
      flat, [] { return std::size_t{64}; }, limits);
  BOOST_TEST(!f.ec);
  BOOST_TEST(f.messages.size() == 1u);
}

// Found by the fuzzer: a length line too long for its type that starts just below the
// message size limit. Arriving a byte at a time, the buffer passes the size limit before the
// line is long enough to be rejected, so every split must report message_too_large (and a
// line rejected well inside the limit stays invalid_length).
BOOST_AUTO_TEST_CASE(an_overlong_line_at_the_size_limit_fails_the_same_way_for_every_split) {
  resp3::parser_limits limits;
  limits.max_message_size = 64;
  const std::string overlong(40, '9');
  const std::string near_limit = "*2\r\n+" + std::string(50, 'x') + "\r\n$" + overlong + "\r\n";
  const std::string well_inside = "*2\r\n+x\r\n$" + overlong + "\r\n";
  for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{17}, std::size_t{1000}}) {
    framed f = frame_stream(near_limit, [chunk] { return chunk; }, limits);
    BOOST_TEST(f.ec == error::message_too_large, "chunk " << chunk << ": " << f.ec.message());
    f = frame_stream(well_inside, [chunk] { return chunk; }, limits);
    BOOST_TEST(f.ec == error::invalid_length, "chunk " << chunk << ": " << f.ec.message());
  }
}

BOOST_AUTO_TEST_SUITE_END()
