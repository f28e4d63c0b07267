#include <corvo/core/log.hpp>

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <sstream>

namespace json = boost::json;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

struct restore_default_logging {
  ~restore_default_logging() { corvo::log::init({}); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(log_suite)

BOOST_AUTO_TEST_CASE(json_lines_carry_level_channel_and_escaped_message) {
  std::ostringstream out;
  restore_default_logging restore;  // detaches the sink before `out` goes away
  corvo::log::init({.min_severity = corvo::log::severity::info,
                    .format = corvo::log::output_format::json,
                    .stream = &out});
  CORVO_LOG(info, "scheduler") << "claimed " << 12 << " tasks";
  CORVO_LOG(error, "redis") << "reply had \"quotes\"\nand a newline";
  const auto lines = lines_of(out.str());
  BOOST_REQUIRE(lines.size() == 2u);
  const auto first = json::parse(lines[0]).as_object();
  BOOST_TEST(first.at("level").as_string() == "info");
  BOOST_TEST(first.at("channel").as_string() == "scheduler");
  BOOST_TEST(first.at("msg").as_string() == "claimed 12 tasks");
  BOOST_TEST(first.at("ts").as_string().size() == std::string("2026-11-22T10:00:00.123456Z").size());
  const auto second = json::parse(lines[1]).as_object();
  BOOST_TEST(second.at("msg").as_string() == "reply had \"quotes\"\nand a newline");
}

BOOST_AUTO_TEST_CASE(records_below_the_minimum_are_not_evaluated) {
  std::ostringstream out;
  restore_default_logging restore;  // detaches the sink before `out` goes away
  corvo::log::init({.min_severity = corvo::log::severity::warning, .stream = &out});
  int evaluated = 0;
  auto count = [&] { return ++evaluated; };
  CORVO_LOG(debug, "x") << count();
  CORVO_LOG(info, "x") << count();
  CORVO_LOG(warning, "x") << count();
  BOOST_TEST(evaluated == 1);
  const auto lines = lines_of(out.str());
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(lines[0].find(" warning [x] 1") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(severity_names_round_trip) {
  for (auto s : {corvo::log::severity::trace, corvo::log::severity::debug,
                 corvo::log::severity::info, corvo::log::severity::warning,
                 corvo::log::severity::error, corvo::log::severity::fatal}) {
    BOOST_TEST((corvo::log::parse_severity(corvo::log::to_string(s)) == s));
  }
  BOOST_TEST(!corvo::log::parse_severity("loud").has_value());
}

BOOST_AUTO_TEST_SUITE_END()
