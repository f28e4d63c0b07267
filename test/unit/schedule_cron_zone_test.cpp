// Cron recurrences in IANA time zones, across daylight-saving transitions (the rules are in
// cron_expression.hpp). Dates: in 2026 the EU switches on Sunday 29 March (02:00 CET ->
// 03:00 CEST) and back on Sunday 25 October (03:00 CEST -> 02:00 CET); the US on 8 March and
// 1 November.
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/schedule/cron_expression.hpp>
#include <corvo/schedule/task.hpp>
#include <cstdio>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace sched = corvo::schedule;
using namespace std::chrono;

namespace {

/// A UTC time.
sched::time_point utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi};
}

/// "2026-03-29 01:00:00.000000Z": readable in a failure message.
std::string iso(sched::time_point t) {
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const auto us = (t - day).count();
  char text[48];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u %02lld:%02lld:%02lld.%06lldZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<long long>(us / 3'600'000'000),
                static_cast<long long>(us / 60'000'000 % 60),
                static_cast<long long>(us / 1'000'000 % 60),
                static_cast<long long>(us % 1'000'000));
  return text;
}

/// The first `n` firing times of `expression` in `zone` strictly after `after`.
std::vector<std::string> firings(const std::string& expression, const std::string& zone,
                                 sched::time_point after, int n) {
  const sched::cron_expression cron(expression);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    after = cron.next_after(after, zone);
    out.push_back(iso(after));
  }
  return out;
}

std::vector<std::string> isos(std::initializer_list<sched::time_point> times) {
  std::vector<std::string> out;
  for (const auto t : times) {
    out.push_back(iso(t));
  }
  return out;
}

bool throws_naming(const auto& call, const std::string& needle) {
  try {
    call();
  } catch (const std::invalid_argument& e) {
    return std::string(e.what()).find(needle) != std::string::npos;
  }
  return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(weekday_mornings_follow_the_offset_change) {
  // 09:00 Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
  const auto got = firings("0 9 * * MON-FRI", "Europe/Berlin", utc(2026, 3, 26, 12), 3);
  const auto expected = isos({utc(2026, 3, 27, 8), utc(2026, 3, 30, 7), utc(2026, 3, 31, 7)});
  BOOST_TEST(got == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_time_in_the_spring_gap_fires_once_right_after_it) {
  // 02:30 does not exist on 29 March: it fires at 03:00 CEST (01:00 UTC), once.
  const auto got = firings("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 3);
  const auto expected =
      isos({utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)});
  BOOST_TEST(got == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(the_minutes_of_a_gap_collapse_into_one_run) {
  // Every 15 minutes: 02:00-02:45 do not exist; they and 03:00 are one run at 01:00 UTC.
  const auto got = firings("*/15 * * * *", "Europe/Berlin", utc(2026, 3, 29, 0, 40), 4);
  const auto expected = isos({utc(2026, 3, 29, 0, 45), utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 15),
                              utc(2026, 3, 29, 1, 30)});
  BOOST_TEST(got == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_time_in_the_repeated_autumn_hour_fires_once_at_its_first_occurrence) {
  // 02:30 happens twice on 25 October (00:30 and 01:30 UTC): it fires at the first only.
  const auto got = firings("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), 2);
  const auto expected = isos({utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)});
  BOOST_TEST(got == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(the_second_pass_of_the_repeated_hour_fires_nothing) {
  // Every 30 minutes: 02:00 and 02:30 CEST fire, their CET repeats do not, 03:00 CET does.
  const auto got = firings("*/30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 40), 4);
  const auto expected = isos({utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 2),
                              utc(2026, 10, 25, 2, 30)});
  BOOST_TEST(got == expected, boost::test_tools::per_element());
  // Asked from inside the second pass (02:10 CET), the next run is 03:00 CET.
  const auto from_second_pass =
      sched::cron_expression("*/30 * * * *").next_after(utc(2026, 10, 25, 1, 10), "Europe/Berlin");
  BOOST_TEST(iso(from_second_pass) == iso(utc(2026, 10, 25, 2)));
}

BOOST_AUTO_TEST_CASE(other_zones_and_offsets) {
  // New York switches at 02:00 local on 8 March 2026: 02:30 does not exist.
  const auto ny = firings("30 2 * * *", "America/New_York", utc(2026, 3, 7, 12), 2);
  const auto ny_expected = isos({utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)});
  BOOST_TEST(ny == ny_expected, boost::test_tools::per_element());
  // Kolkata: +05:30, no daylight saving.
  BOOST_TEST(firings("0 9 * * *", "Asia/Kolkata", utc(2026, 6, 1), 1).front() ==
             iso(utc(2026, 6, 1, 3, 30)));
  // UTC by name and by the empty zone agree.
  BOOST_TEST(firings("0 9 * * *", "UTC", utc(2026, 6, 1), 1).front() == iso(utc(2026, 6, 1, 9)));
  BOOST_TEST(firings("0 9 * * *", "", utc(2026, 6, 1), 1).front() == iso(utc(2026, 6, 1, 9)));
}

BOOST_AUTO_TEST_CASE(an_unknown_zone_is_a_clear_error) {
  const sched::cron_expression cron("0 9 * * *");
  BOOST_TEST(throws_naming([&] { cron.next_after(utc(2026, 1, 1), "Mars/Olympus_Mons"); },
                           "unknown time zone 'Mars/Olympus_Mons'"));
  BOOST_TEST(throws_naming([] { sched::parse_recurrence("cron TZ=Europe/Berlinn 0 9 * * *"); },
                           "Europe/Berlinn"));
  BOOST_TEST(
      throws_naming([] { sched::parse_recurrence("cron TZ= 0 9 * * *"); }, "missing time zone"));
  BOOST_CHECK_NO_THROW(sched::check_time_zone("Europe/Berlin"));
  BOOST_CHECK_NO_THROW(sched::check_time_zone(""));
  BOOST_CHECK_THROW(sched::check_time_zone("Europe"), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(the_zone_is_part_of_the_recurrence_text) {
  const sched::recurrence berlin = sched::cron{"0 9 * * MON-FRI", "Europe/Berlin"};
  BOOST_TEST(sched::describe(berlin) == "cron TZ=Europe/Berlin 0 9 * * MON-FRI");
  BOOST_TEST((sched::parse_recurrence(sched::describe(berlin)) == berlin));
  BOOST_TEST((sched::parse_recurrence("CRON_TZ=Europe/Berlin   0 9 * *  MON-FRI") == berlin));
  BOOST_TEST((sched::parse_recurrence("cron 0 9 * * MON-FRI") ==
              sched::recurrence{sched::cron{"0 9 * * MON-FRI"}}));
  // next_occurrence and next_run_after use the zone (a run missed for days is coalesced).
  BOOST_TEST(iso(*sched::next_occurrence(berlin, utc(2026, 3, 27, 9))) == iso(utc(2026, 3, 30, 7)));
  BOOST_TEST(iso(*sched::next_run_after(berlin, utc(2026, 3, 26, 8), utc(2026, 3, 31, 7, 30))) ==
             iso(utc(2026, 3, 31, 7)));
}
