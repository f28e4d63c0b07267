// samples/access_events against a throwaway PostgreSQL: see access_events_scenario.hpp.
#include <boost/test/unit_test.hpp>

#include "access_events_scenario.hpp"

BOOST_AUTO_TEST_SUITE(access_events_sample)

BOOST_AUTO_TEST_CASE(every_event_stored_once_across_a_redis_restart_postgresql) {
  access_events_scenario::run_scenario(
      corvo::test::shared_postgres_server().create_database("access_events"));
}

BOOST_AUTO_TEST_SUITE_END()
