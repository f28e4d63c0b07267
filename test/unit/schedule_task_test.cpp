#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/schedule/cron_expression.hpp>
#include <corvo/schedule/detail/record.hpp>
#include <corvo/schedule/task.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace sched = corvo::schedule;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

sched::time_point at(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s};
}

/// True when parse_recurrence(text) throws std::invalid_argument mentioning `fragment`.
bool rejects(const std::string& text, const std::string& fragment) {
  try {
    const auto parsed = sched::parse_recurrence(text);
    BOOST_TEST_MESSAGE("'" << text << "' parsed as '" << sched::describe(parsed) << "'");
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    if (message.find(fragment) == std::string::npos) {
      BOOST_TEST_MESSAGE("message was: " << message);
      return false;
    }
    return true;
  }
  return false;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(task_recurrence_suite)

BOOST_AUTO_TEST_CASE(state_names) {
  BOOST_TEST(sched::to_string(sched::task_state::scheduled) == "scheduled");
  BOOST_TEST(sched::to_string(sched::task_state::in_flight) == "in_flight");
  BOOST_TEST(sched::to_string(sched::task_state::dead) == "dead");
  BOOST_TEST(sched::to_string(sched::task_state::unknown) == "unknown");
}

BOOST_AUTO_TEST_CASE(a_one_off_task_has_no_next_occurrence) {
  BOOST_TEST(!sched::next_occurrence(sched::recurrence{}, at(2024, 1, 1)).has_value());
}

BOOST_AUTO_TEST_CASE(an_interval_recurs_one_period_after) {
  const sched::recurrence every_90s = sched::interval{90s};
  const auto due = at(2024, 1, 1, 10) + 123us;
  const auto next = sched::next_occurrence(every_90s, due);
  BOOST_TEST_REQUIRE(next.has_value());
  BOOST_TEST((*next == at(2024, 1, 1, 10, 1, 30) + 123us));
  BOOST_TEST((*sched::next_occurrence(every_90s, *next) == at(2024, 1, 1, 10, 3) + 123us));
}

BOOST_AUTO_TEST_CASE(a_non_positive_interval_is_rejected) {
  BOOST_CHECK_THROW(sched::next_occurrence(sched::interval{0us}, at(2024, 1, 1)),
                    std::invalid_argument);
  BOOST_CHECK_THROW(sched::next_occurrence(sched::interval{-5s}, at(2024, 1, 1)),
                    std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(a_cron_recurs_at_its_next_matching_minute) {
  const sched::recurrence weekdays = sched::cron{"0 9 * * MON-FRI"};
  const auto next = sched::next_occurrence(weekdays, at(2024, 3, 15, 10));  // a Friday
  BOOST_TEST_REQUIRE(next.has_value());
  BOOST_TEST((*next == at(2024, 3, 18, 9)));
  BOOST_CHECK_THROW(sched::next_occurrence(sched::cron{"0 9 * *"}, at(2024, 1, 1)),
                    std::invalid_argument);
  BOOST_CHECK_THROW(sched::next_occurrence(sched::cron{"0 0 30 2 *"}, at(2024, 1, 1)),
                    std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(describe_prints_the_largest_exact_unit) {
  BOOST_TEST(sched::describe(sched::recurrence{}) == "");
  BOOST_TEST(sched::describe(sched::interval{30s}) == "every 30s");
  BOOST_TEST(sched::describe(sched::interval{90s}) == "every 90s");
  BOOST_TEST(sched::describe(sched::interval{5min}) == "every 5m");
  BOOST_TEST(sched::describe(sched::interval{2h}) == "every 2h");
  BOOST_TEST(sched::describe(sched::interval{48h}) == "every 2d");
  BOOST_TEST(sched::describe(sched::interval{1500ms}) == "every 1500ms");
  BOOST_TEST(sched::describe(sched::interval{7us}) == "every 7us");
  BOOST_TEST(sched::describe(sched::cron{"*/5 * * * *"}) == "cron */5 * * * *");
}

BOOST_AUTO_TEST_CASE(parse_reads_what_describe_prints) {
  const std::vector<sched::recurrence> samples = {sched::recurrence{},
                                                  sched::interval{30s},
                                                  sched::interval{90s},
                                                  sched::interval{5min},
                                                  sched::interval{36h},
                                                  sched::interval{1500ms},
                                                  sched::interval{1us},
                                                  sched::interval{86'400'000'001us},
                                                  sched::cron{"*/5 * * * *"},
                                                  sched::cron{"0 9 * * MON-FRI"},
                                                  sched::cron{"0,30 8-18/2 1,15 JAN-JUN 0"}};
  for (const auto& r : samples) {
    const auto text = sched::describe(r);
    BOOST_TEST_CONTEXT("'" << text << "'") {
      BOOST_TEST((sched::parse_recurrence(text) == r));
      BOOST_TEST(sched::describe(sched::parse_recurrence(text)) == text);
    }
  }
}

BOOST_AUTO_TEST_CASE(parse_accepts_bare_durations_and_compound_ones) {
  BOOST_TEST((sched::parse_recurrence("30s") == sched::recurrence{sched::interval{30s}}));
  BOOST_TEST((sched::parse_recurrence("5m") == sched::recurrence{sched::interval{5min}}));
  BOOST_TEST((sched::parse_recurrence("1h30m") == sched::recurrence{sched::interval{90min}}));
  BOOST_TEST((sched::parse_recurrence("250ms") == sched::recurrence{sched::interval{250ms}}));
  BOOST_TEST((sched::parse_recurrence("  every 1d  ") == sched::recurrence{sched::interval{24h}}));
  BOOST_TEST(
      (sched::parse_recurrence("every 2s500ms") == sched::recurrence{sched::interval{2500ms}}));
}

BOOST_AUTO_TEST_CASE(parse_accepts_cron_with_or_without_the_keyword) {
  const sched::recurrence expected = sched::cron{"*/5 9-17 * * MON-FRI"};
  BOOST_TEST((sched::parse_recurrence("cron */5 9-17 * * MON-FRI") == expected));
  // Blanks are normalized so the stored expression round-trips through describe().
  BOOST_TEST((sched::parse_recurrence("cron   */5\t9-17 * *  MON-FRI ") == expected));
  BOOST_TEST((sched::parse_recurrence("*/5 9-17 * * MON-FRI") == expected));
  BOOST_TEST((sched::parse_recurrence("") == sched::recurrence{}));
  BOOST_TEST((sched::parse_recurrence("  ") == sched::recurrence{}));
}

BOOST_AUTO_TEST_CASE(parse_errors_say_what_is_wrong) {
  BOOST_TEST(rejects("every", "missing duration"));
  BOOST_TEST(rejects("every ", "missing duration"));
  BOOST_TEST(rejects("every 0s", "positive"));
  BOOST_TEST(rejects("every 0h0m", "positive"));
  BOOST_TEST(rejects("every 5", "missing unit"));
  BOOST_TEST(rejects("every 5x", "unknown unit 'x'"));
  BOOST_TEST(rejects("every 5 s", "missing unit"));
  BOOST_TEST(rejects("every -5s", "expected a number"));
  BOOST_TEST(rejects("every 99999999999999999999s", "too large"));
  BOOST_TEST(rejects("every 9999999999d", "too large"));
  BOOST_TEST(rejects("every s", "expected a number"));
  BOOST_TEST(rejects("tomorrow", "expected a number"));
  BOOST_TEST(rejects("cron", "missing cron expression"));
  BOOST_TEST(rejects("cron * * *", "expected 5 fields"));
  BOOST_TEST(rejects("cron 61 * * * *", "minute"));
  BOOST_TEST(rejects("cron * * * * FUNDAY", "day-of-week"));
  BOOST_TEST(rejects("next tuesday", "cron expression"));
  BOOST_TEST(rejects("weekly", "expected a number"));
}

// ---- the Redis store's record (detail/record.hpp) -------------------------------------------

namespace {

corvo::schedule::task record_task() {
  corvo::schedule::task t;
  t.id = "r";
  t.type = "mail";
  t.attempts = 1;
  t.max_attempts = 3;
  t.payload = "p k1.x";  // a " k" in the payload is not a lease token
  t.due = corvo::schedule::time_point(std::chrono::microseconds(1'795'000'000'000'000));
  t.occurrence = t.due;
  return t;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_record_names_its_lease_token_only_on_its_options_line) {
  using corvo::schedule::detail::lease_token_of;
  const auto plain = corvo::schedule::detail::encode_record(record_task());
  BOOST_TEST(lease_token_of(plain).empty());
  const auto options_end = plain.find('\n', plain.find('\n') + 1);
  auto leased = plain;
  leased.insert(options_end, " k12.ab");
  BOOST_TEST(lease_token_of(leased) == "12.ab");
  auto among_others = plain;
  among_others.insert(options_end, " 5000 p1 k7.cd r100:1000:2:0");
  BOOST_TEST(lease_token_of(among_others) == "7.cd");
  BOOST_TEST(lease_token_of("").empty());
  BOOST_TEST(lease_token_of("1 k3.x").empty());     // no options line
  BOOST_TEST(lease_token_of("1\n3 k3.x").empty());  // no end to it

  // Decoding ignores the token: the task reads as it did before its lease.
  corvo::schedule::task from_leased, from_plain;
  corvo::schedule::detail::decode_record(among_others, from_leased);
  corvo::schedule::detail::decode_record(plain, from_plain);
  BOOST_TEST(from_leased.max_attempts == 3u);
  BOOST_TEST((from_leased.priority == corvo::schedule::priority::high));
  BOOST_TEST(from_leased.timeout.has_value());
  BOOST_TEST(from_leased.retry.has_value());
  BOOST_TEST(from_leased.payload == from_plain.payload);
}

BOOST_AUTO_TEST_CASE(a_lease_kept_in_its_token_counts_the_try_and_carries_the_due_time) {
  using namespace corvo::schedule::detail;
  BOOST_TEST(token_due("12.ab09f.1795000000000000").value_or(-1) == 1795000000000000);
  // Leases written into the record, and tokens of neither shape.
  for (const char* token : {"12.ab", "12.ab@656d61696c", "", "12", "12.", ".ab.1", "12..1",
                            "12.ab.", "12.xy.1", "12.ab.1x", "x2.ab.1", "12.ab.1.2",
                            "12.ab.99999999999999999999"}) {
    BOOST_TEST_INFO("token '" << token << "'");
    BOOST_TEST(!token_due(token).has_value());
  }
  auto t = record_task();
  t.attempts = 1;
  t.occurrence = {};
  const corvo::schedule::time_point due{std::chrono::microseconds(1795000000000000)};
  apply_lease("12.ab", t);  // written into the record: nothing to add
  BOOST_TEST(t.attempts == 1u);
  BOOST_TEST((t.occurrence == corvo::schedule::time_point{}));
  apply_lease("12.ab.1795000000000000", t);
  BOOST_TEST(t.attempts == 2u);
  BOOST_TEST((t.occurrence == due));
  t.occurrence = due - std::chrono::hours(1);  // a record's own occurrence line stands
  apply_lease("13.ab.1795000000000000", t);
  BOOST_TEST(t.attempts == 3u);
  BOOST_TEST((t.occurrence == due - std::chrono::hours(1)));
}

BOOST_AUTO_TEST_CASE(a_waiting_record_leaves_out_an_occurrence_equal_to_its_due_time) {
  using namespace corvo::schedule::detail;
  auto t = record_task();
  const auto full = encode_record(t);
  const auto waiting = encode_waiting_record(t);
  BOOST_TEST(full.size() == waiting.size() + std::string("1795000000000000\n").size());
  corvo::schedule::task decoded;
  decode_record(waiting, decoded);
  BOOST_TEST((decoded.occurrence == corvo::schedule::time_point{}));  // the caller uses the due
  BOOST_TEST(decoded.payload == t.payload);
  t.occurrence = t.due - std::chrono::hours(1);  // moved by a reschedule: kept
  BOOST_TEST(encode_waiting_record(t) == encode_record(t));
  decode_record(encode_waiting_record(t), decoded);
  BOOST_TEST((decoded.occurrence == t.occurrence));
}

BOOST_AUTO_TEST_SUITE_END()
