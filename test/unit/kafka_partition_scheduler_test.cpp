// The partition scheduler decides which partitions' workers hold the consumer's slots: at
// most `slots` at once, waiting partitions served first come first served, and a partition
// that gives its slot up with messages left goes behind every one already waiting.

#include <boost/test/unit_test.hpp>
#include <corvo/kafka/detail/partition_scheduler.hpp>
#include <string>
#include <vector>

using corvo::kafka::detail::partition_scheduler;

BOOST_AUTO_TEST_SUITE(kafka_partition_scheduler)

BOOST_AUTO_TEST_CASE(partitions_beyond_the_slots_wait_in_line) {
  partition_scheduler<int> slots(2);
  BOOST_TEST(slots.want(1));
  BOOST_TEST(slots.want(2));
  BOOST_TEST(!slots.want(3));
  BOOST_TEST(!slots.want(4));
  BOOST_TEST(!slots.want(3));  // already in line: not twice
  BOOST_TEST(slots.running() == 2U);
  BOOST_TEST(slots.waiting() == 2U);
  BOOST_TEST(slots.should_yield());
  // A worker ending without messages frees its slot for the first in line.
  BOOST_TEST((slots.finished(2, false) == std::vector<int>{3}));
  BOOST_TEST((slots.finished(1, false) == std::vector<int>{4}));
  BOOST_TEST(!slots.should_yield());
  BOOST_TEST((slots.finished(3, false).empty()));
  BOOST_TEST(slots.running() == 1U);
}

BOOST_AUTO_TEST_CASE(a_partition_that_yields_goes_behind_the_waiting_ones) {
  // The starvation of issue 14: one slot, the running partition yields with messages left.
  partition_scheduler<int> slots(1);
  BOOST_TEST(slots.want(0));
  BOOST_TEST(!slots.want(1));
  BOOST_TEST(!slots.want(2));
  std::vector<int> order{0};
  int running = 0;
  for (int turn = 0; turn < 6; ++turn) {
    BOOST_TEST_REQUIRE(slots.should_yield());
    const auto next = slots.finished(running, true);
    BOOST_TEST_REQUIRE(next.size() == 1U);
    running = next.front();
    order.push_back(running);
  }
  BOOST_TEST((order == std::vector<int>{0, 1, 2, 0, 1, 2, 0}));
}

BOOST_AUTO_TEST_CASE(a_yielding_partition_alone_gets_its_slot_back) {
  partition_scheduler<int> slots(1);
  BOOST_TEST(slots.want(7));
  BOOST_TEST(!slots.should_yield());
  BOOST_TEST((slots.finished(7, true) == std::vector<int>{7}));
  BOOST_TEST(slots.running() == 1U);
  BOOST_TEST(slots.waiting() == 0U);
}

BOOST_AUTO_TEST_CASE(a_partition_wanting_a_slot_does_not_overtake_the_line) {
  partition_scheduler<int> slots(1);
  BOOST_TEST(slots.want(0));
  BOOST_TEST(!slots.want(1));
  // The slot went to 1; 0 wanting one again waits behind nobody but still waits its turn.
  BOOST_TEST((slots.finished(0, false) == std::vector<int>{1}));
  BOOST_TEST(!slots.want(0));
  BOOST_TEST((slots.finished(1, true) == std::vector<int>{0}));
  BOOST_TEST((slots.finished(0, false) == std::vector<int>{1}));
}

BOOST_AUTO_TEST_CASE(removed_and_cleared_partitions_leave_the_line) {
  partition_scheduler<std::string> slots(1);
  BOOST_TEST(slots.want("a"));
  BOOST_TEST(!slots.want("b"));
  BOOST_TEST(!slots.want("c"));
  slots.remove("b");  // revoked while waiting
  BOOST_TEST(!slots.is_waiting("b"));
  BOOST_TEST((slots.finished("a", true) == std::vector<std::string>{"c"}));
  slots.clear();  // stopping
  BOOST_TEST(!slots.should_yield());
  BOOST_TEST((slots.finished("c", false).empty()));
  BOOST_TEST(slots.running() == 0U);
}

BOOST_AUTO_TEST_CASE(zero_slots_means_one) {
  partition_scheduler<int> slots(0);
  BOOST_TEST(slots.want(1));
  BOOST_TEST(!slots.want(2));
}

BOOST_AUTO_TEST_SUITE_END()
