// What a request tells the connection beyond its bytes: the block time of its blocking
// commands (added to the reply deadline) and, when it subscribes, how each command is
// answered (confirmation pushes or one reply).

#include <boost/test/unit_test.hpp>
#include <corvo/redis/request.hpp>
#include <string>
#include <vector>

using corvo::redis::request;
using namespace std::chrono_literals;

namespace {

std::chrono::milliseconds block_of(std::vector<std::string> command) {
  request req;
  const std::string name = command.front();
  command.erase(command.begin());
  req.push(name, command);
  return req.block_time();
}

constexpr auto forever = std::chrono::milliseconds::max();

}  // namespace

BOOST_AUTO_TEST_SUITE(request_reply_plan)

BOOST_AUTO_TEST_CASE(block_time_is_read_from_the_command) {
  BOOST_TEST(block_of({"GET", "k"}).count() == 0);
  BOOST_TEST(block_of({"BLPOP", "a", "b", "2.5"}).count() == 2500);
  BOOST_TEST(block_of({"brpop", "a", "0.001"}).count() == 1);
  BOOST_TEST(block_of({"BLMOVE", "src", "dst", "LEFT", "RIGHT", "3"}).count() == 3000);
  BOOST_TEST(block_of({"BRPOPLPUSH", "src", "dst", "1"}).count() == 1000);
  BOOST_TEST(block_of({"BZPOPMIN", "z", "0.25"}).count() == 250);
  BOOST_TEST(block_of({"BLMPOP", "1.5", "2", "a", "b", "LEFT"}).count() == 1500);
  BOOST_TEST(block_of({"BZMPOP", "4", "1", "z", "MIN"}).count() == 4000);
  BOOST_TEST(block_of({"WAIT", "1", "300"}).count() == 300);
  BOOST_TEST(block_of({"WAITAOF", "1", "0", "700"}).count() == 700);
  BOOST_TEST(
      block_of({"XREADGROUP", "GROUP", "g", "c", "BLOCK", "500", "STREAMS", "s", ">"}).count() ==
      500);
  BOOST_TEST(block_of({"XREAD", "COUNT", "1", "STREAMS", "s", "0"}).count() == 0);  // no BLOCK
  // Timeout 0 blocks forever: no deadline. Unreadable: no deadline either.
  BOOST_TEST((block_of({"BLPOP", "a", "0"}) == forever));
  BOOST_TEST((block_of({"XREAD", "BLOCK", "0", "STREAMS", "s", "$"}) == forever));
  BOOST_TEST((block_of({"BLPOP", "a", "soon"}) == forever));

  // A pipeline adds them up (they run one after another); one forever makes it forever.
  request two;
  two.push("BLPOP", "a", 1);
  two.push("GET", "k");
  two.push("WAIT", 1, 250);
  BOOST_TEST(two.block_time().count() == 1250);
  two.push("BLPOP", "a", 0);
  BOOST_TEST((two.block_time() == forever));
  two.clear();
  BOOST_TEST(two.block_time().count() == 0);
}

BOOST_AUTO_TEST_CASE(reply_plan_lists_confirmations_of_subscribe_commands) {
  request plain;
  plain.push("GET", "k");
  BOOST_TEST(plain.reply_plan().empty());  // nothing to track without a subscription

  request req;
  req.push("GET", "k");
  req.push("SUBSCRIBE", "a", "b");
  req.push("psubscribe", "x*");
  req.push("PING");
  req.push("UNSUBSCRIBE");
  const auto& plan = req.reply_plan();
  BOOST_REQUIRE(plan.size() == 5u);
  BOOST_TEST(plan[0].confirmation.empty());
  BOOST_TEST(plan[1].confirmation == "subscribe");
  BOOST_TEST(plan[1].count == 2u);
  BOOST_TEST(plan[2].confirmation == "psubscribe");
  BOOST_TEST(plan[2].count == 1u);
  BOOST_TEST(plan[3].confirmation.empty());
  BOOST_TEST(plan[4].confirmation == "unsubscribe");
  BOOST_TEST(plan[4].count == 0u);             // all of them: as many as the connection holds
  BOOST_TEST(req.expected_responses() == 2u);  // GET and PING
  req.clear();
  BOOST_TEST(req.reply_plan().empty());
}

BOOST_AUTO_TEST_SUITE_END()
