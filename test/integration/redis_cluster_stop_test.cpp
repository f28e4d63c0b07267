// A cluster client's run() ends at once after cancel(), also when cancel() lands while the
// client is asking a node for the topology (a refresh waiting for a dead node). Before the
// fix, the refresh loop, woken by the stop, started its pause between refreshes
// (min_refresh_interval, 200 ms by default) after the stop and slept it out: every stream
// consumer's dedicated cluster connection whose master was dead took ~200 ms more to stop.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/redis/cluster/cluster_client.hpp>
#include <iostream>
#include <string>

#include "support/free_port.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

BOOST_AUTO_TEST_SUITE(redis_cluster_stop)

BOOST_AUTO_TEST_CASE(cancel_during_a_topology_refresh_ends_run_at_once) {
  asio::io_context ctx;
  redis::cluster_options o;
  // Nobody listens there: the first refresh asks it until refresh_timeout.
  o.seeds = {"127.0.0.1:" + std::to_string(corvo::test::free_port())};
  o.refresh_timeout = 20s;
  o.min_refresh_interval = 5s;  // a pause begun after the stop would be plain to see
  redis::cluster_client client(ctx.get_executor(), o);
  bool done = false;
  steady::time_point ended;
  asio::co_spawn(ctx, client.run(), [&](std::exception_ptr) {
    done = true;
    ended = steady::now();
  });
  ctx.run_for(300ms);  // the refresh is waiting for the seed (it waits up to 20 s)
  BOOST_TEST_REQUIRE(!done);
  const auto cancelled_at = steady::now();
  client.cancel();
  while (!done && steady::now() - cancelled_at < 15s) {
    ctx.run_for(10ms);
  }
  BOOST_TEST_REQUIRE(done);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(ended - cancelled_at);
  std::cout << "run() ended " << took.count() << " ms after cancel()\n";
  BOOST_TEST(took.count() < 1000);  // not after the 5 s pause
}

BOOST_AUTO_TEST_SUITE_END()
