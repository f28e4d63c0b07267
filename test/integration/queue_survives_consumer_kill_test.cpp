// The reliable queue's promise with real processes: 3 consumers, 50,000 items, one consumer
// killed with SIGKILL mid-run. Every item is handled; the only items handled twice are the
// ones the killed consumer had started and not acknowledged (exactly the started ones of its
// processing list, read once its connections were gone), each exactly twice, the second time
// with attempts 1; a poison item (its handler always throws) is dead-lettered after its
// attempts with the reason. The same on a 6-node cluster: queue_cluster_test.
#include <boost/test/unit_test.hpp>
#include <corvo/queue/admin.hpp>

#include "support/queue_kill_checks.hpp"
#include "support/redis_server.hpp"

BOOST_AUTO_TEST_CASE(no_item_is_lost_when_a_consumer_is_killed) {
  corvo::test::redis_server server;
  corvo::test::queue_kill_setup setup;
  setup.program = CORVO_QUEUE_WORKER_PATH;
  setup.client = corvo::redis::client_config::from_url(server.url());
  setup.worker_connection = {"--redis", server.url()};
  setup.cli = [&](const std::vector<std::string>& args) { return server.cli_argv(args); };
  const auto report = corvo::test::run_queue_kill_scenario(setup);
  corvo::test::check_queue_kill_report(report);
}
