// Pipelined handling (consumer_options::max_in_flight_per_partition > 1) keeps
// at-least-once across a crash: a consumer process whose handlers of one partition overlap
// (16 at once, finishing out of order) hangs in one message while the later ones finish;
// its auto-commits (every 50 ms) stop exactly at the unfinished message. It is killed
// (SIGKILL); the next member of the group handles exactly the uncommitted messages (the hung
// one and every later one of its partition, finished or not) and nothing of the committed
// ones, so every message is handled and none is lost.

#include <librdkafka/rdkafka.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <corvo/kafka/producer.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "support/child_process.hpp"
#include "support/eventually.hpp"
#include "support/kafka_committed.hpp"
#include "support/run_coroutine.hpp"
#include "support/temp_dir.hpp"

namespace asio = boost::asio;
namespace kafka = corvo::kafka;
using namespace std::chrono_literals;
using corvo::test::eventually;

namespace {

constexpr int per_partition = 200;
constexpr std::int64_t hung_offset = 100;  // partition 0's message "p0-100"
constexpr std::size_t window = 16;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct journal_entry {
  char event;
  long pid;
  std::int32_t partition;
  std::int64_t offset;
  std::string value;
};

std::vector<journal_entry> journal_of(const std::filesystem::path& path) {
  std::vector<journal_entry> out;
  std::istringstream lines(read_file(path));
  journal_entry e;
  while (lines >> e.event >> e.pid >> e.partition >> e.offset >> e.value) {
    out.push_back(e);
  }
  return out;
}

// The offsets of `partition` with event `event` by `pid`, in journal order.
std::vector<std::int64_t> offsets(const std::vector<journal_entry>& journal, char event, long pid,
                                  std::int32_t partition) {
  std::vector<std::int64_t> out;
  for (const auto& e : journal) {
    if (e.event == event && e.pid == pid && e.partition == partition) {
      out.push_back(e.offset);
    }
  }
  return out;
}

std::vector<std::int64_t> range(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> out;
  for (auto o = from; o < to; ++o) {
    out.push_back(o);
  }
  return out;
}

std::vector<std::int64_t> sorted(std::vector<std::int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

struct world {
  kafka::embedded_cluster cluster{1};
  corvo::test::temp_dir dir{"kafka-pipelined"};
  asio::io_context ctx;
  std::filesystem::path journal = dir.path() / "handled.journal";

  world() { cluster.create_topic("orders", 2); }

  corvo::test::child_process start(const std::string& name, const std::string& hang_on) {
    return corvo::test::child_process(
        {CORVO_KAFKA_PIPELINED_CONSUMER_PATH, "--brokers", cluster.bootstrap_servers(), "--topic",
         "orders", "--group", "pipelined", "--journal", journal.string(), "--window",
         std::to_string(window), "--hold-ms", "20", "--hang-on", hang_on},
        dir.path(), dir.path() / (name + ".log"));
  }

  std::map<std::int32_t, std::int64_t> committed_now() {
    return corvo::test::committed_offsets(cluster.bootstrap_servers(), "pipelined", "orders", 2);
  }
};

struct count_failures {
  std::shared_ptr<std::size_t> failed;
  void operator()(boost::system::error_code ec, kafka::delivery_report) const {
    *failed += ec ? 1 : 0;
  }
};

asio::awaitable<void> produce(world& w) {
  const auto ex = co_await asio::this_coro::executor;
  kafka::producer producer(ex, kafka::client_config(w.cluster.bootstrap_servers()));
  auto failed = std::make_shared<std::size_t>(0);
  for (std::int32_t p = 0; p < 2; ++p) {
    for (int n = 0; n < per_partition; ++n) {
      const std::string value = "p" + std::to_string(p) + "-" + std::to_string(n);
      kafka::outgoing_message m{.topic = "orders", .key = std::nullopt, .value = value};
      m.partition = p;
      producer.async_send(std::move(m), count_failures{failed});
    }
  }
  co_await producer.close(30s);
  BOOST_TEST_REQUIRE(*failed == 0U);
}

asio::awaitable<void> crash_and_recover(world& w) {
  co_await produce(w);
  const std::map<std::int32_t, std::int64_t> stopped_at_hung{{0, hung_offset}, {1, per_partition}};
  const std::map<std::int32_t, std::int64_t> all_committed{{0, per_partition}, {1, per_partition}};

  // The first member hangs in p0-100; everything else finishes, and the commits reach
  // partition 0's hung message and the end of partition 1.
  auto first = w.start("first", "p0-" + std::to_string(hung_offset));
  const long first_pid = first.pid();
  std::map<std::int32_t, std::int64_t> seen_committed;
  const bool settled = co_await eventually(
      [&] {
        const auto journal = journal_of(w.journal);
        if (offsets(journal, 'F', first_pid, 0).size() != per_partition - 1 ||
            offsets(journal, 'F', first_pid, 1).size() != per_partition) {
          return false;
        }
        seen_committed = w.committed_now();
        return seen_committed == stopped_at_hung;
      },
      60s, 50ms);
  BOOST_TEST_REQUIRE(settled, "the first consumer did not settle; committed "
                                  << seen_committed.size() << " partitions; its log:\n"
                                  << read_file(w.dir.path() / "first.log"));
  first.kill(SIGKILL);
  first.wait();
  // Committed once more after the kill? No: it is dead; the committed offsets stay.
  BOOST_TEST((w.committed_now() == stopped_at_hung));

  const auto before = journal_of(w.journal);
  // Started in offset order, per partition; finished out of order (the handlers overlapped).
  BOOST_TEST(offsets(before, 'S', first_pid, 0) == range(0, per_partition),
             boost::test_tools::per_element());
  BOOST_TEST(offsets(before, 'S', first_pid, 1) == range(0, per_partition),
             boost::test_tools::per_element());
  auto finished_0 = range(0, per_partition);
  finished_0.erase(finished_0.begin() + hung_offset);
  BOOST_TEST(sorted(offsets(before, 'F', first_pid, 0)) == finished_0,
             boost::test_tools::per_element());

  // The next member gets both partitions after the first one's session expired: it
  // handles exactly partition 0 from the hung message on, and nothing of partition 1.
  auto second = w.start("second", "");
  const long second_pid = second.pid();
  const bool recovered = co_await eventually(
      [&] {
        return offsets(journal_of(w.journal), 'F', second_pid, 0).size() ==
                   per_partition - hung_offset &&
               w.committed_now() == all_committed;
      },
      60s, 50ms);
  BOOST_TEST_REQUIRE(recovered, "the second consumer did not finish; its log:\n"
                                    << read_file(w.dir.path() / "second.log"));
  const int status = second.terminate_and_wait(20s);
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);

  const auto after = journal_of(w.journal);
  BOOST_TEST(offsets(after, 'S', second_pid, 0) == range(hung_offset, per_partition),
             boost::test_tools::per_element());
  BOOST_TEST(sorted(offsets(after, 'F', second_pid, 0)) == range(hung_offset, per_partition),
             boost::test_tools::per_element());
  BOOST_TEST(offsets(after, 'S', second_pid, 1).empty());
  // Nothing lost: every message finished by one of the two.
  std::set<std::pair<std::int32_t, std::int64_t>> finished;
  for (const auto& e : after) {
    if (e.event == 'F') {
      finished.emplace(e.partition, e.offset);
    }
  }
  BOOST_TEST(finished.size() == 2U * per_partition);
  // The second member's handlers overlapped up to the bound, never beyond it.
  const auto log = read_file(w.dir.path() / "second.log");
  BOOST_TEST(log.find("max_running " + std::to_string(window) + "\n") != std::string::npos,
             "no \"max_running " << window << "\" in:\n"
                                 << log);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_crash_after_batched_commits_redelivers_only_the_uncommitted_messages) {
  world w;
  corvo::test::run(w.ctx, crash_and_recover(w));
}
