// The offset tracker decides which offset of a partition may be stored: never past a
// message whose handler has not finished.

#include <corvo/kafka/detail/offset_tracker.hpp>

#include <boost/test/unit_test.hpp>

#include <optional>

using corvo::kafka::detail::offset_tracker;

BOOST_AUTO_TEST_SUITE(kafka_offset_tracker)

BOOST_AUTO_TEST_CASE(nothing_is_committable_before_the_first_message_finishes) {
  offset_tracker tracker;
  BOOST_TEST(!tracker.committable().has_value());
  BOOST_TEST(tracker.track(0));
  BOOST_TEST(tracker.track(1));
  BOOST_TEST(!tracker.committable().has_value());
  BOOST_TEST(tracker.pending() == 2U);
}

BOOST_AUTO_TEST_CASE(in_order_completion_advances_one_past_each_message) {
  offset_tracker tracker;
  for (std::int64_t offset = 10; offset < 15; ++offset) {
    BOOST_TEST(tracker.track(offset));
  }
  for (std::int64_t offset = 10; offset < 15; ++offset) {
    BOOST_TEST((tracker.finish(offset) == std::optional<std::int64_t>(offset + 1)));
    BOOST_TEST((tracker.committable() == std::optional<std::int64_t>(offset + 1)));
  }
  BOOST_TEST(tracker.pending() == 0U);
}

BOOST_AUTO_TEST_CASE(a_later_message_finishing_first_does_not_move_the_offset) {
  offset_tracker tracker;
  tracker.track(0);
  tracker.track(1);
  tracker.track(2);
  BOOST_TEST(!tracker.finish(2).has_value());
  BOOST_TEST(!tracker.finish(1).has_value());
  BOOST_TEST(!tracker.committable().has_value());
  // The earliest one finishing releases the whole finished run at once.
  BOOST_TEST((tracker.finish(0) == std::optional<std::int64_t>(3)));
  BOOST_TEST((tracker.committable() == std::optional<std::int64_t>(3)));
}

BOOST_AUTO_TEST_CASE(an_unfinished_message_holds_back_everything_after_it) {
  offset_tracker tracker;
  for (std::int64_t offset = 0; offset < 5; ++offset) {
    tracker.track(offset);
  }
  tracker.finish(0);
  tracker.finish(1);
  // 2 failed (its handler was cancelled): it never finishes.
  tracker.finish(3);
  tracker.finish(4);
  BOOST_TEST((tracker.committable() == std::optional<std::int64_t>(2)));
  BOOST_TEST(tracker.pending() == 3U);
}

BOOST_AUTO_TEST_CASE(gaps_in_offsets_are_followed) {
  offset_tracker tracker;
  tracker.track(4);
  tracker.track(9);  // 5..8 compacted away
  tracker.track(10);
  BOOST_TEST((tracker.finish(4) == std::optional<std::int64_t>(5)));
  BOOST_TEST((tracker.finish(9) == std::optional<std::int64_t>(10)));
  BOOST_TEST((tracker.finish(10) == std::optional<std::int64_t>(11)));
}

BOOST_AUTO_TEST_CASE(duplicates_and_offsets_going_back_are_refused) {
  offset_tracker tracker;
  BOOST_TEST(tracker.track(5));
  BOOST_TEST(!tracker.track(5));
  BOOST_TEST(!tracker.track(3));
  BOOST_TEST((tracker.last_tracked() == std::optional<std::int64_t>(5)));
  tracker.finish(5);
  BOOST_TEST(!tracker.track(5));  // fetched again after it finished: still a duplicate
  BOOST_TEST(tracker.track(6));
  BOOST_TEST(tracker.pending() == 1U);
}

BOOST_AUTO_TEST_CASE(finishing_an_unknown_or_finished_offset_changes_nothing) {
  offset_tracker tracker;
  tracker.track(0);
  tracker.track(1);
  BOOST_TEST(!tracker.finish(7).has_value());
  BOOST_TEST(!tracker.finish(1).has_value());
  BOOST_TEST(!tracker.finish(1).has_value());  // twice
  BOOST_TEST((tracker.finish(0) == std::optional<std::int64_t>(2)));
  BOOST_TEST(!tracker.finish(0).has_value());  // already released
  BOOST_TEST((tracker.committable() == std::optional<std::int64_t>(2)));
}

BOOST_AUTO_TEST_SUITE_END()
