#pragma once
// The assertions of the queue kill scenario (queue_workers.hpp), shared by the standalone
// and the cluster test. Header-only: it uses Boost.Test, which the support library does not.

#include <boost/test/unit_test.hpp>
#include <corvo/queue/admin.hpp>

#include "support/queue_workers.hpp"

namespace corvo::test {

inline std::string first_of(const std::map<std::string, std::vector<pid_t>>& m) {
  std::string out;
  for (const auto& [k, v] : m) {
    out += k + " x" + std::to_string(v.size()) + " ";
    if (out.size() > 200) {
      break;
    }
  }
  return out;
}

inline void check_queue_kill_report(const queue_kill_report& r) {
  std::string problems;
  for (const auto& p : r.problems) {
    problems += p + "\n";
  }
  BOOST_TEST_REQUIRE(r.problems.empty(), problems);
  BOOST_TEST_MESSAGE("killed consumer's processing list: " << r.in_victim_list.size()
                                                           << " item(s), of them started: "
                                                           << r.expected_twice.size());
  // None lost.
  BOOST_TEST(r.unfinished.empty(), r.unfinished.size() << " item(s) never finished");
  // The killed consumer held items (else the scenario proved nothing): at least one was in
  // its handler at the kill (held), and each such item was redelivered exactly once: it is
  // in the victim's processing list, started by the victim and by one survivor (checked
  // below with every started-twice item), and finished exactly once, by that survivor.
  BOOST_TEST(!r.in_victim_list.empty());
  BOOST_TEST(!r.expected_twice.empty());
  BOOST_TEST_REQUIRE(!r.held_by_victim.empty());
  for (const auto& body : r.held_by_victim) {
    BOOST_TEST(r.in_victim_list.contains(body), body << " held but not in the processing list");
    BOOST_TEST(r.expected_twice.contains(body), body << " held but not redelivered");
    const auto f = r.finished_by.find(body);
    BOOST_TEST_REQUIRE((f != r.finished_by.end()), body << " held and never finished");
    BOOST_TEST(f->second.size() == 1u, body << " finished " << f->second.size() << " times");
    BOOST_TEST(std::count(f->second.begin(), f->second.end(), r.victim) == 0, body);
  }
  // Only its started, unacknowledged items ran twice: exactly those, exactly twice, once
  // by the victim.
  std::set<std::string> twice;
  for (const auto& [body, pids] : r.started_twice_or_more) {
    twice.insert(body);
    BOOST_TEST(pids.size() == 2u, body << " started " << pids.size() << " times");
    BOOST_TEST(std::count(pids.begin(), pids.end(), r.victim) == 1, body);
  }
  BOOST_TEST((twice == r.expected_twice), "started twice: " << first_of(r.started_twice_or_more)
                                                            << "; expected "
                                                            << r.expected_twice.size());
  // The reaper counted the killed delivery: survivors saw attempts 1 for those, 0 otherwise.
  BOOST_TEST(r.wrong_attempts.empty(),
             r.wrong_attempts.size() << " wrong attempt counts, e.g. "
                                     << (r.wrong_attempts.empty() ? "" : r.wrong_attempts[0]));
  // The poison item: 3 deliveries, then dead with the handler's reason.
  BOOST_TEST(r.poison_starts == 3u);
  BOOST_TEST_REQUIRE(r.dead_letters.size() == 1u);
  const auto& dead = r.dead_letters[0];
  BOOST_TEST(dead.id == r.poison_id);
  BOOST_TEST(dead.attempts == 3u);
  BOOST_TEST(dead.body == "poison");
  BOOST_TEST(dead.reason.find("boom: poison always fails") != std::string::npos, dead.reason);
  // Nothing left behind; the survivors were never refused an ack.
  BOOST_TEST(r.queue_left == 0);
  for (const auto left : r.processing_left) {
    BOOST_TEST(left == 0);
  }
  BOOST_TEST(r.survivor_stats.size() == 2u);
  for (const auto& line : r.survivor_stats) {
    BOOST_TEST(line.find(" stale=0 ") != std::string::npos, line);
    BOOST_TEST(line.find(" handed_back=0 ") != std::string::npos, line);
  }
}

}  // namespace corvo::test
