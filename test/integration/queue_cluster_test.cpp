// The kill scenario of queue_survives_consumer_kill_test on a 6-node Redis Cluster: the
// queue's keys share one hash tag, so the scripts run on the queue's master; consumers
// block on it through their dedicated clients.
#include <boost/test/unit_test.hpp>
#include <corvo/queue/admin.hpp>

#include "support/queue_kill_checks.hpp"
#include "support/redis_cluster.hpp"

BOOST_AUTO_TEST_CASE(no_item_is_lost_when_a_consumer_is_killed_on_a_cluster) {
  corvo::test::redis_cluster cluster;
  corvo::test::queue_kill_setup setup;
  setup.program = CORVO_QUEUE_WORKER_PATH;
  setup.queue = "{jobs}:queue";
  setup.client = corvo::redis::client_config::from_cluster_seeds(cluster.seed_urls());
  for (const auto& seed : cluster.seed_urls()) {
    setup.worker_connection.push_back("--cluster");
    setup.worker_connection.push_back(seed);
  }
  const auto owner = cluster.node_for_slot(cluster.key_slot(setup.queue));
  setup.cli = [&cluster, owner](const std::vector<std::string>& args) {
    return cluster.node(owner).cli_argv(args);
  };
  const auto report = corvo::test::run_queue_kill_scenario(setup);
  corvo::test::check_queue_kill_report(report);
}
