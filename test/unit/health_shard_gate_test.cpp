// The dispatcher's shard gate (dispatcher_options::shard_available fed by health::shard_gate):
// a shard whose dependency is down claims nothing while the other shards run their tasks;
// back up, its tasks run. Memory store, passive dependencies switched by the test.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/health/shard_gate.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/shard.hpp>
#include <corvo/schedule/sink.hpp>
#include <set>

#include "support/eventually.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace health = corvo::health;
namespace sched = corvo::schedule;
using namespace std::chrono_literals;

namespace {

struct recorder {
  std::set<std::string>* ran;
  asio::awaitable<void> operator()(const sched::claimed_task& t) const {
    ran->insert(t.work.id);
    co_return;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_shard_whose_dependency_is_down_claims_nothing) {
  asio::io_context io;
  health::monitor m(io.get_executor());
  const auto shard0 = m.add_passive("shard-0-master");
  const auto shard1 = m.add_passive("shard-1-master");
  m.record(shard1, {health::status::up, ""});  // shard 0 stays down
  sched::memory_store store(io.get_executor(), 2);
  sched::handler_registry handlers;
  std::set<std::string> ran;
  handlers.on_task("job", recorder{&ran});
  sched::direct_sink out(handlers);
  sched::dispatcher_options options;
  options.shard_available = health::shard_gate({shard0, shard1});
  options.max_sleep = 50ms;
  sched::dispatcher d(store, out, options);

  std::vector<std::string> on0, on1;
  for (int i = 0; on0.size() < 5 || on1.size() < 5; ++i) {
    const auto id = "t" + std::to_string(i);
    auto& list = store.shard_of(id) == 0 ? on0 : on1;
    if (list.size() < 5)
      list.push_back(id);
  }
  asio::cancellation_signal stop;
  auto body = [&]() -> asio::awaitable<void> {
    for (const auto& ids : {on0, on1}) {
      for (const auto& id : ids) {
        sched::task t;
        t.id = id;
        t.type = "job";
        t.due = sched::now();
        co_await store.schedule(t);
      }
    }
    asio::co_spawn(io, d.run(),
                   asio::bind_cancellation_slot(stop.slot(), [](std::exception_ptr) {}));
    BOOST_TEST_REQUIRE(co_await corvo::test::eventually(
        [&] {
          for (const auto& id : on1)
            if (!ran.contains(id))
              return false;
          return true;
        },
        10s));
    co_await corvo::sleep_for(300ms);  // several claim rounds of shard 1 and the 100 ms re-checks
    for (const auto& id : on0)
      BOOST_TEST(!ran.contains(id), id << " ran while its shard was down");
    m.record(shard0, {health::status::up, ""});
    BOOST_TEST_REQUIRE(co_await corvo::test::eventually([&] { return ran.size() == 10; }, 10s));
  };
  corvo::test::run(io, body(), [&] { stop.emit(asio::cancellation_type::terminal); });
}
