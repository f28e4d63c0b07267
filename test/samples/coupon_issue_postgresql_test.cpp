// samples/coupon_issue against a throwaway PostgreSQL, both queue modes, 10,000 requests
// each: see coupon_issue_scenario.hpp.
#include <boost/test/unit_test.hpp>

#include "coupon_issue_scenario.hpp"

BOOST_AUTO_TEST_SUITE(coupon_issue_sample)

BOOST_AUTO_TEST_CASE(redis_queue_issues_exactly_the_stock_across_a_processor_kill_postgresql) {
  coupon_issue_scenario::run_scenario(
      corvo::test::shared_postgres_server().create_database("coupons_redis"), "redis", 8931);
}

BOOST_AUTO_TEST_CASE(kafka_queue_issues_exactly_the_stock_across_a_processor_kill_postgresql) {
  coupon_issue_scenario::run_scenario(
      corvo::test::shared_postgres_server().create_database("coupons_kafka"), "kafka", 8931);
}

BOOST_AUTO_TEST_SUITE_END()
