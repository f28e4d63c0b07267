#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/schedule/cron_expression.hpp>
#include <initializer_list>
#include <random>
#include <set>
#include <stdexcept>
#include <string>

namespace sched = corvo::schedule;
using namespace std::chrono;
using std::chrono::days;

namespace {

/// A UTC time: at(2024, 3, 15, 10, 7, 30).
sched::time_point at(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s};
}

template <std::size_t N>
std::bitset<N> bits(std::initializer_list<int> values) {
  std::bitset<N> out;
  for (const int v : values) {
    out.set(static_cast<std::size_t>(v));
  }
  return out;
}

template <std::size_t N>
std::bitset<N> bit_range(int low, int high, int step = 1) {
  std::bitset<N> out;
  for (int v = low; v <= high; v += step) {
    out.set(static_cast<std::size_t>(v));
  }
  return out;
}

/// True when parsing `text` throws std::invalid_argument whose message names `field` and
/// quotes `token`.
bool rejects(const std::string& text, const std::string& field, const std::string& token) {
  try {
    sched::cron_expression parsed(text);
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    const bool named = message.find(field) != std::string::npos &&
                       message.find("'" + token + "'") != std::string::npos;
    if (!named) {
      BOOST_TEST_MESSAGE("message was: " << message);
    }
    return named;
  }
  return false;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cron_expression_suite)

BOOST_AUTO_TEST_CASE(star_matches_every_value_of_each_field) {
  const sched::cron_expression every_minute("* * * * *");
  BOOST_TEST(every_minute.minutes().all());
  BOOST_TEST(every_minute.hours().all());
  BOOST_TEST((every_minute.days_of_month() == bit_range<32>(1, 31)));
  BOOST_TEST((every_minute.months() == bit_range<13>(1, 12)));
  BOOST_TEST(every_minute.days_of_week().all());
  BOOST_TEST(!every_minute.day_of_month_restricted());
  BOOST_TEST(!every_minute.day_of_week_restricted());
  BOOST_TEST(every_minute.text() == "* * * * *");
}

BOOST_AUTO_TEST_CASE(values_lists_ranges_and_steps) {
  const sched::cron_expression e("1,5 1-5 */10 2-11/3 5/1");
  BOOST_TEST((e.minutes() == bits<60>({1, 5})));
  BOOST_TEST((e.hours() == bits<24>({1, 2, 3, 4, 5})));
  BOOST_TEST((e.days_of_month() == bits<32>({1, 11, 21, 31})));
  BOOST_TEST((e.months() == bits<13>({2, 5, 8, 11})));
  BOOST_TEST((e.days_of_week() == bits<7>({5, 6, 0})));  // 5..7, 7 being Sunday

  const sched::cron_expression steps("10-40/10 */15 * * *");
  BOOST_TEST((steps.minutes() == bits<60>({10, 20, 30, 40})));
  BOOST_TEST((steps.hours() == bits<24>({0, 15})));

  const sched::cron_expression from_value("5/20 0 1 1 0");
  BOOST_TEST((from_value.minutes() == bits<60>({5, 25, 45})));

  const sched::cron_expression mixed("0,30-33,50-59/5 * * * *");
  BOOST_TEST((mixed.minutes() == bits<60>({0, 30, 31, 32, 33, 50, 55})));
}

BOOST_AUTO_TEST_CASE(month_and_weekday_names_in_any_case) {
  const sched::cron_expression e("0 9 * JAN-mar,Dec MON-FRI");
  BOOST_TEST((e.months() == bits<13>({1, 2, 3, 12})));
  BOOST_TEST((e.days_of_week() == bits<7>({1, 2, 3, 4, 5})));
  const sched::cron_expression weekend("0 0 * * sat,SUN");
  BOOST_TEST((weekend.days_of_week() == bits<7>({6, 0})));
}

BOOST_AUTO_TEST_CASE(sunday_is_both_0_and_7) {
  const sched::cron_expression zero("0 12 * * 0");
  const sched::cron_expression seven("0 12 * * 7");
  BOOST_TEST((zero.days_of_week() == bits<7>({0})));
  BOOST_TEST((seven.days_of_week() == bits<7>({0})));
  // From Friday 2024-03-15 both give Sunday 2024-03-17 at noon.
  BOOST_TEST((zero.next_after(at(2024, 3, 15, 10)) == at(2024, 3, 17, 12)));
  BOOST_TEST((seven.next_after(at(2024, 3, 15, 10)) == at(2024, 3, 17, 12)));
}

BOOST_AUTO_TEST_CASE(day_fields_restriction_follows_the_leading_star) {
  const sched::cron_expression e("0 0 13 * */2");
  BOOST_TEST(e.day_of_month_restricted());
  BOOST_TEST(!e.day_of_week_restricted());
  const sched::cron_expression both("0 0 1-31 * 0-6");
  BOOST_TEST(both.day_of_month_restricted());
  BOOST_TEST(both.day_of_week_restricted());
}

BOOST_AUTO_TEST_CASE(blanks_between_fields_are_free) {
  const sched::cron_expression spaced("  */5 \t 9-17  *  * MON-FRI ");
  const sched::cron_expression tight("*/5 9-17 * * MON-FRI");
  BOOST_TEST((spaced == tight));
}

BOOST_AUTO_TEST_CASE(wrong_field_count_is_rejected) {
  for (const char* text : {"", "* * * *", "* * * * * *", "   "}) {
    BOOST_CHECK_EXCEPTION(
        sched::cron_expression{text}, std::invalid_argument, [](const std::invalid_argument& e) {
          return std::string(e.what()).find("expected 5 fields") != std::string::npos;
        });
  }
}

BOOST_AUTO_TEST_CASE(out_of_range_values_name_field_and_token) {
  BOOST_TEST(rejects("60 * * * *", "minute", "60"));
  BOOST_TEST(rejects("* 24 * * *", "hour", "24"));
  BOOST_TEST(rejects("* * 0 * *", "day-of-month", "0"));
  BOOST_TEST(rejects("* * 32 * *", "day-of-month", "32"));
  BOOST_TEST(rejects("* * * 0 *", "month", "0"));
  BOOST_TEST(rejects("* * * 13 *", "month", "13"));
  BOOST_TEST(rejects("* * * * 8", "day-of-week", "8"));
  BOOST_TEST(rejects("0-60 * * * *", "minute", "60"));
}

BOOST_AUTO_TEST_CASE(bad_steps_are_rejected) {
  BOOST_TEST(rejects("*/0 * * * *", "minute", "*/0"));
  BOOST_TEST(rejects("*/x * * * *", "minute", "*/x"));
  BOOST_TEST(rejects("*/ * * * *", "minute", "*/"));
  BOOST_TEST(rejects("*/60 * * * *", "minute", "*/60"));
  BOOST_TEST(rejects("* */2/3 * * *", "hour", "*/2/3"));
  BOOST_TEST(rejects("* * * */-1 *", "month", "*/-1"));
}

BOOST_AUTO_TEST_CASE(bad_names_and_malformed_items_are_rejected) {
  BOOST_TEST(rejects("* * * FOO *", "month", "FOO"));
  BOOST_TEST(rejects("* * * MON *", "month", "MON"));
  BOOST_TEST(rejects("* * * * JAN", "day-of-week", "JAN"));
  BOOST_TEST(rejects("* * * * MONDAY", "day-of-week", "MONDAY"));
  BOOST_TEST(rejects("JAN * * * *", "minute", "JAN"));
  BOOST_TEST(rejects("5-1 * * * *", "minute", "5-1"));
  BOOST_TEST(rejects("* * * * FRI-MON", "day-of-week", "FRI-MON"));
  BOOST_TEST(rejects("1, * * * *", "minute", ""));
  BOOST_TEST(rejects("1,,2 * * * *", "minute", ""));
  BOOST_TEST(rejects("-5 * * * *", "minute", ""));
  BOOST_TEST(rejects("1- * * * *", "minute", ""));
  BOOST_TEST(rejects("** * * * *", "minute", "**"));
  BOOST_TEST(rejects("* 1x * * *", "hour", "1x"));
  BOOST_TEST(rejects("* * ? * *", "day-of-month", "?"));
}

BOOST_AUTO_TEST_CASE(every_quarter_hour) {
  const sched::cron_expression e("*/15 * * * *");
  BOOST_TEST((e.next_after(at(2024, 3, 15, 10, 7, 30)) == at(2024, 3, 15, 10, 15)));
  // Strictly after: a matching instant itself is not returned.
  BOOST_TEST((e.next_after(at(2024, 3, 15, 10, 15)) == at(2024, 3, 15, 10, 30)));
  BOOST_TEST((e.next_after(at(2024, 3, 15, 10, 14, 59) + microseconds{999'999}) ==
              at(2024, 3, 15, 10, 15)));
  BOOST_TEST((e.next_after(at(2024, 3, 15, 23, 50)) == at(2024, 3, 16, 0, 0)));
}

BOOST_AUTO_TEST_CASE(weekdays_skip_the_weekend) {
  const sched::cron_expression e("0 9 * * MON-FRI");
  // Friday 10:00 -> Monday 09:00.
  BOOST_TEST((e.next_after(at(2024, 3, 15, 10)) == at(2024, 3, 18, 9)));
  // Friday 08:59 -> the same Friday 09:00.
  BOOST_TEST((e.next_after(at(2024, 3, 15, 8, 59)) == at(2024, 3, 15, 9)));
}

BOOST_AUTO_TEST_CASE(month_start_across_a_year_end) {
  const sched::cron_expression e("0 0 1 * *");
  BOOST_TEST((e.next_after(at(2023, 12, 15, 12)) == at(2024, 1, 1)));
  BOOST_TEST((e.next_after(at(2024, 1, 1)) == at(2024, 2, 1)));
  const sched::cron_expression last_minute("59 23 31 12 *");
  BOOST_TEST((last_minute.next_after(at(2023, 12, 31, 23, 59)) == at(2024, 12, 31, 23, 59)));
}

BOOST_AUTO_TEST_CASE(leap_day_waits_for_a_leap_year) {
  const sched::cron_expression e("0 0 29 2 *");
  BOOST_TEST((e.next_after(at(2023, 3, 1)) == at(2024, 2, 29)));
  BOOST_TEST((e.next_after(at(2024, 2, 29)) == at(2028, 2, 29)));
  // 2100 is not a leap year: eight years from 2096 to 2104.
  BOOST_TEST((e.next_after(at(2096, 3, 1)) == at(2104, 2, 29)));
}

BOOST_AUTO_TEST_CASE(day_of_month_or_day_of_week_when_both_restricted) {
  const sched::cron_expression e("0 0 13 * FRI");
  // Friday 2024-01-05 comes before the 13th.
  BOOST_TEST((e.next_after(at(2024, 1, 1)) == at(2024, 1, 5)));
  // After Friday the 12th, Saturday the 13th matches by day of month.
  BOOST_TEST((e.next_after(at(2024, 1, 12)) == at(2024, 1, 13)));
  BOOST_TEST((e.next_after(at(2024, 1, 13)) == at(2024, 1, 19)));
}

BOOST_AUTO_TEST_CASE(day_of_month_and_day_of_week_when_one_is_starred) {
  // `*/7` starts with a star: both must match, i.e. a Sunday the 13th.
  const sched::cron_expression e("0 0 13 * */7");
  BOOST_TEST((e.next_after(at(2024, 1, 1)) == at(2024, 10, 13)));
  // A plain `*` day of week leaves the day of month alone.
  const sched::cron_expression dom_only("30 6 13 * *");
  BOOST_TEST((dom_only.next_after(at(2024, 1, 1)) == at(2024, 1, 13, 6, 30)));
  const sched::cron_expression dow_only("30 6 * * FRI");
  BOOST_TEST((dow_only.next_after(at(2024, 1, 6)) == at(2024, 1, 12, 6, 30)));
}

BOOST_AUTO_TEST_CASE(hours_and_minutes_roll_over) {
  const sched::cron_expression e("30 */6 * * *");
  BOOST_TEST((e.next_after(at(2024, 3, 15, 5, 31)) == at(2024, 3, 15, 6, 30)));
  BOOST_TEST((e.next_after(at(2024, 3, 15, 18, 30)) == at(2024, 3, 16, 0, 30)));
  const sched::cron_expression months("0 0 1 FEB,NOV *");
  BOOST_TEST((months.next_after(at(2024, 2, 1)) == at(2024, 11, 1)));
}

BOOST_AUTO_TEST_CASE(impossible_expressions_fail_quickly) {
  for (const char* text : {"0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 */7"}) {
    const sched::cron_expression e(text);
    const auto started = steady_clock::now();
    BOOST_CHECK_EXCEPTION(e.next_after(at(2024, 1, 1)), std::invalid_argument,
                          [](const std::invalid_argument& error) {
                            return std::string(error.what()).find("matches no time") !=
                                   std::string::npos;
                          });
    // 400 years are 4,800 month steps, not 210 million minutes.
    BOOST_TEST((steady_clock::now() - started < milliseconds{500}));
  }
}

BOOST_AUTO_TEST_CASE(matches_tells_whether_a_minute_fires) {
  const sched::cron_expression e("*/15 9 * * MON-FRI");
  BOOST_TEST(e.matches(at(2024, 3, 15, 9, 45, 59)));
  BOOST_TEST(!e.matches(at(2024, 3, 15, 9, 46)));
  BOOST_TEST(!e.matches(at(2024, 3, 16, 9, 45)));  // Saturday
}

// Property: for random expressions, next_after returns a matching minute and no minute
// between `after` and it matches. The oracle is a minute-by-minute scan that checks the
// generator's own value sets (not the parser's) with the Vixie day rule.
namespace {

struct generated_field {
  std::string text;
  std::set<int> values;  // day of week: 7 folded to 0
};

struct generated_expression {
  std::string text;
  generated_field fields[5];
};

generated_field generate_field(std::mt19937& random, int low, int high, bool weekday) {
  auto pick = [&](int a, int b) { return std::uniform_int_distribution<int>(a, b)(random); };
  generated_field out;
  auto add = [&](int v) { out.values.insert(weekday && v == 7 ? 0 : v); };
  switch (pick(0, 5)) {
    case 0:
      out.text = "*";
      for (int v = low; v <= high; ++v) {
        add(v);
      }
      break;
    case 1: {
      const int v = pick(low, high);
      out.text = std::to_string(v);
      add(v);
      break;
    }
    case 2: {
      const int count = pick(2, 4);
      for (int i = 0; i < count; ++i) {
        const int v = pick(low, high);
        out.text += (i > 0 ? "," : "") + std::to_string(v);
        add(v);
      }
      break;
    }
    case 3: {
      const int a = pick(low, high);
      const int b = pick(a, high);
      out.text = std::to_string(a) + "-" + std::to_string(b);
      for (int v = a; v <= b; ++v) {
        add(v);
      }
      break;
    }
    case 4: {
      const int step = pick(1, std::max(1, (high - low) / 2));
      out.text = "*/" + std::to_string(step);
      for (int v = low; v <= high; v += step) {
        add(v);
      }
      break;
    }
    default: {
      const int a = pick(low, high);
      const int b = pick(a, high);
      const int step = pick(1, 5);
      out.text = std::to_string(a) + "-" + std::to_string(b) + "/" + std::to_string(step);
      for (int v = a; v <= b; v += step) {
        add(v);
      }
      break;
    }
  }
  return out;
}

generated_expression generate(std::mt19937& random) {
  generated_expression out;
  out.fields[0] = generate_field(random, 0, 59, false);
  out.fields[1] = generate_field(random, 0, 23, false);
  out.fields[2] = generate_field(random, 1, 31, false);
  out.fields[3] = generate_field(random, 1, 12, false);
  out.fields[4] = generate_field(random, 0, 7, true);
  for (const auto& f : out.fields) {
    out.text += (out.text.empty() ? "" : " ") + f.text;
  }
  return out;
}

class oracle {
 public:
  explicit oracle(const generated_expression& e) : e_(e) {}

  bool matches(sys_time<minutes> t) {
    const auto d = floor<days>(t);
    if (d != day_) {
      day_ = d;
      const year_month_day ymd{d};
      const bool month_ok = has(3, static_cast<int>(static_cast<unsigned>(ymd.month())));
      const bool dom = has(2, static_cast<int>(static_cast<unsigned>(ymd.day())));
      const bool dow = has(4, static_cast<int>(weekday{d}.c_encoding()));
      const bool dom_star = e_.fields[2].text[0] == '*';
      const bool dow_star = e_.fields[4].text[0] == '*';
      day_ok_ = month_ok && (dom_star || dow_star ? dom && dow : dom || dow);
    }
    const auto since_midnight = t - d;
    return day_ok_ && has(1, static_cast<int>(duration_cast<hours>(since_midnight).count())) &&
           has(0, static_cast<int>((since_midnight % hours{1}).count()));
  }

 private:
  bool has(int field, int value) const { return e_.fields[field].values.count(value) != 0; }

  const generated_expression& e_;
  sys_days day_{};
  bool day_ok_ = false;
};

}  // namespace

BOOST_AUTO_TEST_CASE(next_after_agrees_with_a_brute_force_scan) {
  std::mt19937 random(20240315);
  const auto window = days{45};
  int found_in_window = 0;
  for (int round = 0; round < 150; ++round) {
    const auto expression = generate(random);
    BOOST_TEST_CONTEXT("expression '" << expression.text << "'") {
      const sched::cron_expression parsed(expression.text);
      const auto after = at(2020, 1, 1) + microseconds{std::uniform_int_distribution<std::int64_t>(
                                              0, 10LL * 365 * 86'400'000'000)(random)};
      oracle check(expression);
      std::optional<sched::time_point> next;
      try {
        next = parsed.next_after(after);
      } catch (const std::invalid_argument&) {
        // Only an expression that cannot match may fail; the scan below must find nothing.
      }
      const auto first = floor<minutes>(after) + minutes{1};
      const auto end = next ? std::min(floor<minutes>(*next), first + window) : first + window;
      std::optional<sys_time<minutes>> earlier;
      for (auto t = first; t < end && !earlier; t += minutes{1}) {
        if (check.matches(t)) {
          earlier = t;
        }
      }
      BOOST_TEST(!earlier.has_value());
      if (next) {
        BOOST_TEST((*next > after));
        BOOST_TEST((*next == floor<minutes>(*next)));
        BOOST_TEST(check.matches(floor<minutes>(*next)));
        BOOST_TEST(parsed.matches(*next));
        found_in_window += *next < first + window ? 1 : 0;
      }
    }
  }
  // The generator must exercise the scan, not only far-away or impossible expressions.
  BOOST_TEST(found_in_window > 75);
}

BOOST_AUTO_TEST_SUITE_END()
