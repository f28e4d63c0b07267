// W3C traceparent validation, its place in the Redis task record (old records without one
// still decode), and log records that carry it (core/trace.hpp).
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/trace.hpp>
#include <corvo/schedule/detail/record.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <sstream>
#include <stdexcept>

#include "support/run_coroutine.hpp"

namespace trace = corvo::trace;
namespace json = boost::json;
using namespace corvo::schedule;

namespace {

constexpr std::string_view good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct restore_default_logging {
  ~restore_default_logging() { corvo::log::init({}); }
};

std::string problem_of(std::string text) {
  return trace::traceparent_problem(text);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(trace_suite)

BOOST_AUTO_TEST_CASE(valid_traceparents_pass_and_each_kind_of_invalid_one_is_named) {
  BOOST_TEST(trace::is_valid_traceparent(good));
  BOOST_TEST(problem_of(std::string(good)) == "");
  // A later version in the same form, and flags other than 01.
  BOOST_TEST(
      trace::is_valid_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));

  const std::string wrong_shape = "expected version-traceid-parentid-flags (2-32-16-2 hex digits)";
  BOOST_TEST(problem_of("") == wrong_shape);
  BOOST_TEST(problem_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-") == wrong_shape);
  BOOST_TEST(problem_of("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == wrong_shape);
  BOOST_TEST(problem_of("00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01") == wrong_shape);
  BOOST_TEST(problem_of("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01") ==
             "the trace id must be lowercase hex digits");
  BOOST_TEST(problem_of("0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") ==
             "the version must be lowercase hex digits");
  BOOST_TEST(problem_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9g2b7-01") ==
             "the parent id must be lowercase hex digits");
  BOOST_TEST(problem_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z") ==
             "the flags must be lowercase hex digits");
  BOOST_TEST(problem_of("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") ==
             "version ff is invalid");
  BOOST_TEST(problem_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01") ==
             "the trace id is all zeros");
  BOOST_TEST(problem_of("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01") ==
             "the parent id is all zeros");

  BOOST_CHECK_NO_THROW(trace::check_traceparent("", "task 'a'"));
  BOOST_CHECK_NO_THROW(trace::check_traceparent(good, "task 'a'"));
  try {
    trace::check_traceparent("00-abc", "task 'a'");
    BOOST_FAIL("an invalid traceparent was accepted");
  } catch (const std::invalid_argument& e) {
    BOOST_TEST(std::string(e.what()) == "task 'a': invalid traceparent '00-abc': " + wrong_shape);
  }
}

BOOST_AUTO_TEST_CASE(the_task_record_carries_a_traceparent_and_old_records_decode) {
  task t;
  t.id = "a";
  t.type = "mail";
  t.payload = json::parse(R"({"to":"x"})");
  t.max_attempts = 3;
  t.priority = priority::high;
  t.occurrence = time_point(std::chrono::microseconds(1'700'000'000'000'000));
  const auto without = detail::encode_record(t);
  t.traceparent = std::string(good);
  const auto with = detail::encode_record(t);
  // No trace: not one byte more; a trace: one option on the max_attempts line.
  BOOST_TEST(with ==
             std::string(without).insert(without.find(" p1") + 3, " t" + std::string(good)));

  task back;
  detail::decode_record(with, back);
  BOOST_TEST(back.traceparent == good);
  BOOST_TEST(back.max_attempts == 3u);
  BOOST_TEST((back.priority == priority::high));
  BOOST_TEST(back.type == "mail");
  BOOST_TEST(json::serialize(back.payload) == R"({"to":"x"})");

  // A record written before traces existed (and one of the older 5-line layout) decodes with
  // none, also into a task that had one.
  detail::decode_record(without, back);
  BOOST_TEST(back.traceparent.empty());
  task old;
  old.traceparent = std::string(good);
  detail::decode_record("2\n5 30000\nmail\n\nboom\n{\"to\":\"y\"}", old);
  BOOST_TEST(old.traceparent.empty());
  BOOST_TEST(old.attempts == 2u);
  BOOST_TEST(old.timeout.value().count() == 30000);
  BOOST_TEST(old.last_error == "boom");

  // Every option together, in any combination, round trips.
  t.timeout = std::chrono::milliseconds(250);
  t.retry = retry_backoff{std::chrono::milliseconds(10), std::chrono::milliseconds(100), 3.0, 0.5};
  task all;
  detail::decode_record(detail::encode_record(t), all);
  BOOST_TEST(all.traceparent == good);
  BOOST_TEST(all.timeout.value().count() == 250);
  BOOST_TEST((all.retry.value() == *t.retry));

  t.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
  BOOST_CHECK_THROW(detail::encode_record(t), std::invalid_argument);
}

namespace {

// Schedules `good` and `bad`; returns both as read back (bad: refused, so none) and the
// refusal's text.
boost::asio::awaitable<std::pair<std::optional<task>, std::optional<task>>> schedule_both(
    memory_store& store, task good_task, task bad_task, std::string& refusal) {
  co_await store.schedule(good_task);
  try {
    co_await store.schedule(bad_task);
  } catch (const std::invalid_argument& e) {
    refusal = e.what();
  }
  auto a = co_await store.get("a");
  auto b = co_await store.get("b");
  co_return std::pair{std::move(a), std::move(b)};
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_memory_store_keeps_a_traceparent_and_refuses_an_invalid_one) {
  boost::asio::io_context ctx;
  memory_store store(ctx.get_executor());
  task t;
  t.id = "a";
  t.type = "mail";
  t.payload = json::object{};
  t.due = now() + std::chrono::hours(1);
  t.traceparent = std::string(good);
  task bad = t;
  bad.id = "b";
  bad.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0";
  std::string refusal;
  const auto back = corvo::test::run(ctx, schedule_both(store, t, bad, refusal));
  BOOST_TEST_REQUIRE(back.first.has_value());
  BOOST_TEST(back.first->traceparent == good);
  BOOST_TEST(!back.second.has_value());
  BOOST_TEST(refusal ==
             "task 'b': invalid traceparent "
             "'00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0': expected "
             "version-traceid-parentid-flags (2-32-16-2 hex digits)");
}

BOOST_AUTO_TEST_CASE(traced_records_carry_the_traceparent_attribute) {
  std::ostringstream out, text;  // before `restore`: the sink writes to them until it runs
  restore_default_logging restore;
  corvo::log::init({.min_severity = corvo::log::severity::info,
                    .format = corvo::log::output_format::json,
                    .stream = &out});
  const std::string tp(good);
  CORVO_LOG_TRACED(info, "billing", tp) << "charged " << 42;
  CORVO_LOG_TRACED(info, "billing", std::string()) << "no trace";
  CORVO_LOG_TRACED(debug, "billing", tp) << "below the minimum";
  std::istringstream in(out.str());
  std::string first, second, third;
  std::getline(in, first);
  std::getline(in, second);
  BOOST_TEST(!std::getline(in, third));
  const auto a = json::parse(first).as_object();
  BOOST_TEST(a.at("msg").as_string() == "charged 42");
  BOOST_TEST(a.at("channel").as_string() == "billing");
  BOOST_TEST(a.at("traceparent").as_string() == good);
  const auto b = json::parse(second).as_object();
  BOOST_TEST(b.at("msg").as_string() == "no trace");
  BOOST_TEST(!b.contains("traceparent"));

  corvo::log::init({.stream = &text});
  CORVO_LOG_TRACED(warning, "billing", tp) << "late";
  BOOST_TEST(text.str().ends_with(" warning [billing] late trace=" + tp + "\n"), text.str());
}

BOOST_AUTO_TEST_SUITE_END()
