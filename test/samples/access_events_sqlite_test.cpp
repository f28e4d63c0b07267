// samples/access_events against SQLite: see access_events_scenario.hpp.
#include <boost/test/unit_test.hpp>

#include "access_events_scenario.hpp"

BOOST_AUTO_TEST_SUITE(access_events_sample)

BOOST_AUTO_TEST_CASE(every_event_stored_once_across_a_redis_restart_sqlite) {
  corvo::test::temp_dir dir("access-events-db");
  access_events_scenario::run_scenario("sqlite:" + (dir.path() / "events.db").string());
}

BOOST_AUTO_TEST_SUITE_END()
