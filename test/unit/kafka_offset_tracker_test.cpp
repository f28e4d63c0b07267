// The offset tracker decides which offset of a partition may be stored: never past a
// message whose handler has not finished, and never past a message fetched again after the
// fetch position went back.

#include <boost/test/unit_test.hpp>
#include <corvo/kafka/detail/offset_tracker.hpp>
#include <cstdint>
#include <map>
#include <optional>

using corvo::kafka::detail::offset_tracker;
using offset = std::optional<std::int64_t>;

namespace {

// Tracks offsets and keeps their tickets, so tests finish messages by offset as the consumer
// finishes the message it handled.
struct partition {
  offset_tracker tracker;
  std::map<std::int64_t, std::uint64_t> tickets;  // the latest ticket of each offset

  bool track(std::int64_t o) {  // true when the offset went back
    const auto t = tracker.track(o);
    tickets[o] = t.ticket;
    return t.rewound;
  }
  offset finish(std::int64_t o) { return tracker.finish(tickets.at(o)); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_offset_tracker)

BOOST_AUTO_TEST_CASE(nothing_is_committable_before_the_first_message_finishes) {
  partition p;
  BOOST_TEST(!p.tracker.committable().has_value());
  BOOST_TEST(!p.track(0));
  BOOST_TEST(!p.track(1));
  BOOST_TEST(!p.tracker.committable().has_value());
  BOOST_TEST(p.tracker.pending() == 2U);
}

BOOST_AUTO_TEST_CASE(in_order_completion_advances_one_past_each_message) {
  partition p;
  for (std::int64_t o = 10; o < 15; ++o) {
    BOOST_TEST(!p.track(o));
  }
  for (std::int64_t o = 10; o < 15; ++o) {
    BOOST_TEST((p.finish(o) == offset(o + 1)));
    BOOST_TEST((p.tracker.committable() == offset(o + 1)));
  }
  BOOST_TEST(p.tracker.pending() == 0U);
}

BOOST_AUTO_TEST_CASE(a_later_message_finishing_first_does_not_move_the_offset) {
  partition p;
  p.track(0);
  p.track(1);
  p.track(2);
  BOOST_TEST(!p.finish(2).has_value());
  BOOST_TEST(!p.finish(1).has_value());
  BOOST_TEST(!p.tracker.committable().has_value());
  // The earliest one finishing releases the whole finished run at once.
  BOOST_TEST((p.finish(0) == offset(3)));
  BOOST_TEST((p.tracker.committable() == offset(3)));
}

BOOST_AUTO_TEST_CASE(an_unfinished_message_holds_back_everything_after_it) {
  partition p;
  for (std::int64_t o = 0; o < 5; ++o) {
    p.track(o);
  }
  p.finish(0);
  p.finish(1);
  // 2 failed (its handler was cancelled): it never finishes.
  p.finish(3);
  p.finish(4);
  BOOST_TEST((p.tracker.committable() == offset(2)));
  BOOST_TEST(p.tracker.pending() == 3U);
}

BOOST_AUTO_TEST_CASE(gaps_in_offsets_are_followed) {
  partition p;
  p.track(4);
  p.track(9);  // 5..8 compacted away
  p.track(10);
  BOOST_TEST((p.finish(4) == offset(5)));
  BOOST_TEST((p.finish(9) == offset(10)));
  BOOST_TEST((p.finish(10) == offset(11)));
}

// librdkafka hands a partition's messages over in increasing offsets unless its fetch
// position moved back (a seek, an offset reset, a log truncated after a leader change): an
// offset at or below the last one is such a rewind, not a duplicate to skip.
BOOST_AUTO_TEST_CASE(an_offset_going_back_is_a_rewind_that_is_tracked_from_there) {
  partition p;
  for (std::int64_t o = 5; o < 8; ++o) {
    p.track(o);
    p.finish(o);
  }
  BOOST_TEST((p.tracker.committable() == offset(8)));
  // The log was truncated to 3 and new messages written from there: 3 is handled, and until
  // it is nothing past 3 may be stored.
  BOOST_TEST(p.track(3));
  BOOST_TEST((p.tracker.committable() == offset(3)));
  BOOST_TEST(!p.track(4));
  BOOST_TEST((p.finish(3) == offset(4)));
  BOOST_TEST((p.finish(4) == offset(5)));
  BOOST_TEST(p.tracker.pending() == 0U);
}

BOOST_AUTO_TEST_CASE(a_rewind_to_the_same_offset_fetches_it_again) {
  partition p;
  BOOST_TEST(!p.track(5));
  BOOST_TEST(p.track(5));  // seek to 5 while 5 was buffered: it comes again
  BOOST_TEST(p.tracker.pending() == 1U);
  BOOST_TEST((p.finish(5) == offset(6)));
}

BOOST_AUTO_TEST_CASE(a_message_handed_out_before_a_rewind_cannot_finish_its_refetched_copy) {
  offset_tracker tracker;
  const auto old_first = tracker.track(10).ticket;
  const auto old_in_flight = tracker.track(11).ticket;  // its handler runs
  tracker.track(12);
  BOOST_TEST((tracker.finish(old_first) == offset(11)));
  // Rewind to 11: 11 and 12 are forgotten and fetched again.
  const auto again = tracker.track(11);
  BOOST_TEST(again.rewound);
  BOOST_TEST(tracker.pending() == 1U);
  BOOST_TEST((tracker.committable() == offset(11)));
  // The handler of the old 11 finishes: that is not the re-fetched 11.
  BOOST_TEST(!tracker.finish(old_in_flight).has_value());
  BOOST_TEST((tracker.committable() == offset(11)));
  BOOST_TEST((tracker.finish(again.ticket) == offset(12)));
}

BOOST_AUTO_TEST_CASE(unfinished_messages_before_the_rewind_point_still_hold_the_offset_back) {
  partition p;
  for (std::int64_t o = 0; o < 6; ++o) {
    p.track(o);
  }
  p.finish(0);
  // 1 runs; 2..5 wait. Rewind to 4: 4 and 5 are forgotten, 1..3 stay.
  BOOST_TEST(p.track(4));
  BOOST_TEST((p.tracker.committable() == offset(1)));
  BOOST_TEST(p.tracker.pending() == 4U);  // 1, 2, 3 and the new 4
  p.finish(2);
  p.finish(3);
  BOOST_TEST((p.finish(1) == offset(4)));
  BOOST_TEST((p.finish(4) == offset(5)));
}

BOOST_AUTO_TEST_CASE(a_rewind_before_anything_finished_goes_back_to_the_rewind_point) {
  partition p;
  p.track(50);
  p.track(51);
  BOOST_TEST(!p.tracker.committable().has_value());
  BOOST_TEST(p.track(40));  // seek back from where the assignment started
  BOOST_TEST((p.tracker.committable() == offset(40)));
  BOOST_TEST((p.finish(40) == offset(41)));
}

BOOST_AUTO_TEST_CASE(finishing_an_unknown_or_finished_ticket_changes_nothing) {
  offset_tracker tracker;
  const auto first = tracker.track(0).ticket;
  const auto second = tracker.track(1).ticket;
  BOOST_TEST(!tracker.finish(second + 7).has_value());
  BOOST_TEST(!tracker.finish(second).has_value());
  BOOST_TEST(!tracker.finish(second).has_value());  // twice
  BOOST_TEST((tracker.finish(first) == offset(2)));
  BOOST_TEST(!tracker.finish(first).has_value());  // already released
  BOOST_TEST((tracker.committable() == offset(2)));
}

BOOST_AUTO_TEST_SUITE_END()
