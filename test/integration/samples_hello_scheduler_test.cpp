// samples/hello_scheduler, the program docs/scheduler.md shows: run as a user would, stopped
// with SIGTERM like a service. It greets ada once at her due time, never bob (cancelled),
// and stops gracefully (exit 0, run result "stopped").
#include <sys/wait.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++n;
  }
  return n;
}

// Polls the log until it contains `part` (the program's own output is the condition).
bool wait_for_output(const std::filesystem::path& log, const std::string& part,
                     std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (read_file(log).find(part) != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

#ifdef CORVO_HELLO_SCHEDULER_PATH
BOOST_AUTO_TEST_CASE(greets_once_never_the_cancelled_one_and_stops_gracefully) {
  corvo::test::temp_dir dir("hello-scheduler");
  const auto log = dir.path() / "out.log";
  corvo::test::child_process program({CORVO_HELLO_SCHEDULER_PATH}, dir.path(), log);
  BOOST_REQUIRE_MESSAGE(wait_for_output(log, "hello, ada", std::chrono::seconds(30)),
                        read_file(log));
  BOOST_TEST(count(read_file(log), "cancelled hello-bob: true") == 1u, read_file(log));
  // bob was due 100 ms after ada; had the cancel not held he would run by then. This bound
  // is for an absence, so it is generous rather than tight.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  program.kill(SIGTERM);
  const auto status = program.wait_for(std::chrono::seconds(15));
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(WIFEXITED(*status));
  BOOST_TEST(WEXITSTATUS(*status) == 0);
  const auto out = read_file(log);
  BOOST_TEST(count(out, "hello, ada (task hello-ada)") == 1u, out);
  BOOST_TEST(count(out, "hello, bob") == 0u, out);
  BOOST_TEST(count(out, "stopped: stopped") == 1u, out);
}
#else
BOOST_AUTO_TEST_CASE(greets_once_never_the_cancelled_one_and_stops_gracefully,
                     *boost::unit_test::disabled()) {}
#endif
