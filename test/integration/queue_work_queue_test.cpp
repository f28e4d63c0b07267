// work_queue versus reliable_queue, each tested for what it promises.
//  - work_queue handles each item once while its consumer lives, dead-letters a failing item
//    at once (no retry: it has left the queue), hands unfinished items back on a clean stop;
//  - work_queue is AT MOST ONCE: an item whose consumer is killed (SIGKILL) while handling it
//    is gone for good — the queue is empty and another consumer never sees it;
//  - reliable_queue under the same kill: the item comes back (the reaper) and is handled by
//    the next consumer, with attempts 1;
//  - both take a batch in one Redis call when items wait (RPOP count / the take script).
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/notifier.hpp>
#include <corvo/queue/admin.hpp>
#include <corvo/queue/producer.hpp>
#include <corvo/queue/reliable_queue.hpp>
#include <corvo/queue/work_queue.hpp>
#include <map>
#include <thread>

#include "support/queue_fixture.hpp"
#include "support/queue_workers.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/scheduler_workers.hpp"
#include "support/temp_dir.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace queue = corvo::queue;
using corvo::test::background_run;
using corvo::test::eventually;
using namespace std::chrono_literals;

namespace {

// Handlers running at once, and the most seen (bounded parallelism: max_in_flight).
struct parallelism {
  std::size_t running = 0;
  std::size_t peak = 0;
};

struct counter {
  std::map<std::string, int>* seen;
  parallelism* load;
  asio::awaitable<void> operator()(const queue::item& it) const {
    ++(*seen)[it.body];
    if (it.body == "bad") {
      throw std::runtime_error("bad item");
    }
    if (it.body == "hang") {
      co_await corvo::sleep_for(1h);
    }
    // Long enough for the next batch to arrive while this one runs: handlers overlap.
    ++load->running;
    load->peak = std::max(load->peak, load->running);
    co_await corvo::sleep_for(20ms);
    --load->running;
  }
};

queue::queue_options work_options() {
  queue::queue_options o;
  o.name = "jobs";
  o.max_in_flight = 8;
  o.batch = 16;
  o.block_timeout = 200ms;
  o.drain_timeout = 300ms;
  return o;
}

asio::awaitable<void> work_everything(redis::client& client, queue::work_queue& q,
                                      background_run& consumer, std::map<std::string, int>& seen,
                                      std::string& hang_value) {
  queue::producer jobs(client, "jobs");
  std::vector<std::string> bodies;
  for (int i = 0; i < 300; ++i) {
    bodies.push_back("w" + std::to_string(i));
  }
  bodies.push_back("bad");
  co_await jobs.push_raw_batch(bodies);
  BOOST_TEST(co_await eventually(
      [&] { return q.stats().succeeded == 300 && q.stats().dead_lettered == 1; }, 20s));
  const auto hang_id = co_await jobs.push_raw("hang");
  hang_value = queue::encode_envelope(hang_id, 0, "hang");
  BOOST_TEST(co_await eventually([&] { return seen["hang"] == 1; }, 20s));
  consumer.stop();
  BOOST_TEST(co_await eventually([&] { return consumer.done; }, 20s));
  const auto dead = co_await queue::dead_letters(client, "jobs", 0, 10);
  BOOST_TEST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].body == "bad");
  BOOST_TEST(dead[0].attempts == 1u);
  BOOST_TEST(dead[0].reason == "bad item");
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_work_queue_handles_each_item_once_and_hands_back_on_a_clean_stop) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  std::map<std::string, int> seen;
  parallelism load;
  queue::work_queue q(client, work_options(), counter{&seen, &load});
  background_run consumer;
  consumer.start(ctx, q);
  std::string hang_value;
  corvo::test::run(ctx, work_everything(client, q, consumer, seen, hang_value),
                   [&] { client.cancel(); });
  BOOST_TEST(consumer.ended_by_stop());
  for (int i = 0; i < 300; ++i) {
    BOOST_TEST(seen["w" + std::to_string(i)] == 1);
  }
  BOOST_TEST(seen["bad"] == 1);  // no retry
  // Bounded parallelism: with 300 items of 20 ms each waiting (one LPUSH), exactly
  // max_in_flight (8) handlers run at once, never more.
  BOOST_TEST(load.peak == work_options().max_in_flight);
  BOOST_TEST(q.stats().retried == 0u);
  // The unfinished item is back, unchanged, at the tail (consumed next).
  BOOST_TEST(server.cli("LRANGE", "jobs", "0", "-1") == hang_value);
  BOOST_TEST(q.stats().handed_back == 1u);
}

namespace {

// Starts a queue_worker in `mode` holding "held" for ever, pushes "held", kills the worker
// while it handles it, then runs a second worker of the same mode and pushes "after". Returns
// the journal of both workers.
corvo::test::queue_journal kill_while_handling(corvo::test::redis_server& server,
                                               const std::string& mode) {
  corvo::test::temp_dir dir("queue-kill");
  const std::vector<std::string> common{"--redis", server.url(),      "--mode",
                                        mode,      "--heartbeat-ttl", "1000"};
  auto first_args = common;
  first_args.insert(first_args.end(), {"--consumer", "first", "--hold-body", "held"});
  corvo::test::scheduler_worker first(CORVO_QUEUE_WORKER_PATH, dir.path(), "first", first_args);
  first.wait_ready();
  server.cli("LPUSH", "jobs", queue::encode_envelope("held-1", 0, "held"));
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (corvo::test::line_count(first.journal_path()) < 1) {
    BOOST_REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(5ms);
  }
  first.kill();
  while (server.cli("CLIENT", "LIST").find("name=qw-" + std::to_string(first.pid()) + " ") !=
         std::string::npos) {
    std::this_thread::sleep_for(10ms);
  }
  if (mode == "work") {
    // Popped and gone: in no list of the queue.
    BOOST_TEST(server.cli("LLEN", "jobs") == "0");
    BOOST_TEST(server.cli("KEYS", "{jobs}:*") == "");
  }
  auto second_args = common;
  second_args.insert(second_args.end(), {"--consumer", "second"});
  corvo::test::scheduler_worker second(CORVO_QUEUE_WORKER_PATH, dir.path(), "second", second_args);
  second.wait_ready();
  server.cli("LPUSH", "jobs", queue::encode_envelope("after-1", 0, "after"));
  std::vector<std::filesystem::path> journals{first.journal_path(), second.journal_path()};
  const auto handled = [&] {
    const auto j = corvo::test::queue_journal::read(journals);
    const bool after = j.finished.count("after") != 0;
    return mode == "work" ? after : after && j.finished.count("held") != 0;
  };
  while (!handled()) {
    BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline + 30s, second.log_tail());
    BOOST_REQUIRE_MESSAGE(second.running(), second.log_tail());
    std::this_thread::sleep_for(20ms);
  }
  BOOST_TEST(second.stop() == 0);
  return corvo::test::queue_journal::read(journals);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_work_queue_loses_the_item_of_a_killed_consumer_as_documented) {
  corvo::test::redis_server server;
  const auto j = kill_while_handling(server, "work");
  BOOST_TEST(j.started.at("held").size() == 1u);  // the killed consumer's delivery only
  BOOST_TEST(j.finished.count("held") == 0u);     // never finished, never seen again
  BOOST_TEST(j.finished.at("after").size() == 1u);
  BOOST_TEST(server.cli("LLEN", "jobs") == "0");
  BOOST_TEST(server.cli("LLEN", "{jobs}:dead") == "0");
}

BOOST_AUTO_TEST_CASE(a_reliable_queue_gives_the_item_of_a_killed_consumer_to_the_next) {
  corvo::test::redis_server server;
  const auto j = kill_while_handling(server, "reliable");
  const auto& held = j.started.at("held");
  BOOST_TEST_REQUIRE(held.size() == 2u);
  BOOST_TEST(held[0].attempts == 0u);
  BOOST_TEST(held[1].attempts == 1u);  // the killed delivery counted
  BOOST_TEST(held[0].pid != held[1].pid);
  BOOST_TEST(j.finished.at("held").size() == 1u);
  BOOST_TEST(server.cli("LLEN", "jobs") == "0");
}

namespace {

// Handlers that wait until the gate opens, so the items taken stay in flight.
struct gated {
  corvo::notifier* gate;
  bool* open;
  std::size_t* handled;
  asio::awaitable<void> operator()(const queue::item&) const {
    while (!*open) {
      co_await gate->wait();
    }
    ++*handled;
  }
};

// The calls of `command` the server has run, from INFO commandstats (0 when never run).
std::uint64_t calls_of(corvo::test::redis_server& server, const std::string& command) {
  const std::string stats = server.cli("INFO", "commandstats");
  const std::string field = "cmdstat_" + command + ":calls=";
  const auto at = stats.find(field);
  return at == std::string::npos ? 0 : std::stoull(stats.substr(at + field.size()));
}

// 160 items wait before the consumer starts; handlers hold every item. With max_in_flight 64
// and batch 16 the consumer fills its 64 slots in exactly 4 calls of 16 items, never
// blocking (the take script moves up to 16 into the processing list atomically for the
// reliable queue); when the gate opens it handles the rest.
template <class Queue>
void takes_in_batches(const char* blocking_command, const char* batch_command) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  redis::client client(ctx.get_executor(), redis::client_config::from_url(server.url()));
  asio::co_spawn(ctx, client.run(), [](std::exception_ptr) {});
  corvo::notifier gate(ctx.get_executor());
  bool open = false;
  std::size_t handled = 0;
  auto options = work_options();
  options.max_in_flight = 64;
  options.batch = 16;
  Queue q(client, options, gated{&gate, &open, &handled});
  background_run consumer;
  const auto scenario = [&]() -> asio::awaitable<void> {
    queue::producer jobs(client, "jobs");
    std::vector<std::string> bodies;
    for (int i = 0; i < 160; ++i) {
      bodies.push_back("b" + std::to_string(i));
    }
    co_await jobs.push_raw_batch(bodies);
    // The reliable queue's take is a script beside others (heartbeat): only the work
    // queue's RPOP is counted on the server.
    const auto batch_calls_before = batch_command != nullptr ? calls_of(server, batch_command) : 0;
    consumer.start(ctx, q);
    BOOST_REQUIRE(co_await eventually([&] { return q.stats().taken == 64; }, 20s));
    BOOST_TEST(q.stats().takes == 4u);
    if (batch_command != nullptr) {
      BOOST_TEST(calls_of(server, batch_command) - batch_calls_before == 4u);
    }
    BOOST_TEST(calls_of(server, blocking_command) == 0u);
    BOOST_TEST(server.cli("LLEN", "jobs") == "96");
    open = true;
    gate.notify_all();
    BOOST_REQUIRE(co_await eventually([&] { return handled == 160; }, 20s));
    BOOST_TEST(q.stats().taken == 160u);
    BOOST_TEST(q.stats().takes < 160u);
    consumer.stop();
    BOOST_REQUIRE(co_await eventually([&] { return consumer.done; }, 20s));
  };
  corvo::test::run(ctx, scenario(), [&] { client.cancel(); });
  BOOST_TEST(consumer.ended_by_stop());
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_work_queue_takes_a_batch_in_one_call) {
  takes_in_batches<queue::work_queue>("brpop", "rpop");
}

BOOST_AUTO_TEST_CASE(a_reliable_queue_takes_a_batch_in_one_call) {
  takes_in_batches<queue::reliable_queue>("blmove", nullptr);
}
