// The Kafka form of a task: round trip, and a clear permanent_error for every malformed
// input (the worker dead-letters those at once).
#include <corvo/schedule/sink.hpp>
#include <corvo/schedule/task_message.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

using namespace corvo::schedule;
namespace json = boost::json;

namespace {

claimed_task sample() {
  claimed_task t;
  t.work.id = "order-42";
  t.work.type = "email.timeout";
  t.work.payload = json::parse(R"({"to":"ada@example.com","n":[1,2,3]})");
  t.work.due = time_point(std::chrono::microseconds(1'795'430'400'000'123));
  t.work.occurrence = time_point(std::chrono::microseconds(1'795'430'395'000'000));  // retried
  t.work.attempts = 2;
  t.work.max_attempts = 7;
  t.work.repeat = interval{std::chrono::seconds(5)};
  t.token = "17";
  return t;
}

bool names(const permanent_error& e, const std::string& text) {
  return std::string(e.what()).find(text) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(round_trip_keeps_what_a_handler_needs) {
  const auto published = time_point(std::chrono::microseconds(1'795'430'400'000'999));
  const auto text = encode_task_message(sample(), published);
  const auto m = decode_task_message(text);
  BOOST_TEST(m.work.id == "order-42");
  BOOST_TEST(m.work.type == "email.timeout");
  BOOST_TEST(m.work.payload == sample().work.payload);
  BOOST_TEST(m.work.due.time_since_epoch().count() == 1'795'430'400'000'123);
  BOOST_TEST(m.work.occurrence.time_since_epoch().count() == 1'795'430'395'000'000);
  BOOST_TEST(m.work.attempts == 2u);
  BOOST_TEST(m.work.max_attempts == 7u);
  BOOST_TEST((m.published == published));
  // Recurrence stays with the store: the message carries one run.
  BOOST_TEST(std::holds_alternative<std::monostate>(m.work.repeat));
  BOOST_TEST(json::parse(text).as_object().at("attempt").as_int64() == 2);
}

BOOST_AUTO_TEST_CASE(a_message_without_occurrence_takes_its_due_time) {
  auto v = json::parse(encode_task_message(sample(), now())).as_object();
  v.erase("occurrence");
  const auto m = decode_task_message(json::serialize(v));
  BOOST_TEST((m.work.occurrence == m.work.due));
}

BOOST_AUTO_TEST_CASE(unknown_members_are_ignored) {
  auto v = json::parse(encode_task_message(sample(), now())).as_object();
  v["trace_id"] = "abc";
  BOOST_TEST(decode_task_message(json::serialize(v)).work.id == "order-42");
}

BOOST_AUTO_TEST_CASE(malformed_messages_are_permanent_errors_naming_the_problem) {
  const auto base = json::parse(encode_task_message(sample(), now())).as_object();
  BOOST_CHECK_EXCEPTION(decode_task_message("{not json"), permanent_error,
                        [](const permanent_error& e) { return names(e, "not JSON"); });
  BOOST_CHECK_EXCEPTION(decode_task_message("[1,2]"), permanent_error,
                        [](const permanent_error& e) { return names(e, "not a JSON object"); });
  const std::pair<const char*, json::value> cases[] = {
      {"id", json::value(nullptr)},        {"id", json::value("")},
      {"type", json::value(3)},            {"due", json::value("soon")},
      {"due", json::value(-1)},            {"attempt", json::value(0)},
      {"max_attempts", json::value(1.5)},  {"published", json::value(json::array{})},
  };
  for (const auto& [name, bad] : cases) {
    auto o = base;
    o[name] = bad;
    BOOST_CHECK_EXCEPTION(decode_task_message(json::serialize(o)), permanent_error,
                          [&](const permanent_error& e) { return names(e, name); });
    o.erase(name);
    BOOST_CHECK_EXCEPTION(decode_task_message(json::serialize(o)), permanent_error,
                          [&](const permanent_error& e) { return names(e, name); });
  }
  auto o = base;
  o.erase("payload");
  BOOST_CHECK_EXCEPTION(decode_task_message(json::serialize(o)), permanent_error,
                        [](const permanent_error& e) { return names(e, "payload"); });
}
