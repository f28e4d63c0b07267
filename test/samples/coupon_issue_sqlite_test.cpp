// samples/coupon_issue against SQLite, both queue modes, 10,000 requests each: see
// coupon_issue_scenario.hpp.
#include <boost/test/unit_test.hpp>

#include "coupon_issue_scenario.hpp"

BOOST_AUTO_TEST_SUITE(coupon_issue_sample)

BOOST_AUTO_TEST_CASE(redis_queue_issues_exactly_the_stock_across_a_processor_kill_sqlite) {
  corvo::test::temp_dir dir("coupon-issue-db");
  coupon_issue_scenario::run_scenario("sqlite:" + (dir.path() / "coupons.db").string(), "redis",
                                      8931);
}

BOOST_AUTO_TEST_CASE(kafka_queue_issues_exactly_the_stock_across_a_processor_kill_sqlite) {
  corvo::test::temp_dir dir("coupon-issue-db");
  coupon_issue_scenario::run_scenario("sqlite:" + (dir.path() / "coupons.db").string(), "kafka",
                                      8931);
}

BOOST_AUTO_TEST_SUITE_END()
