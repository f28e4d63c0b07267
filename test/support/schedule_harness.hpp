#pragma once
// Harnesses for store-level scheduler tests run on both stores (BOOST_AUTO_TEST_CASE_TEMPLATE
// over schedule_stores<Shards>): each owns an io_context and a store of `Shards` shards.
//
//   memory_schedule_harness  the memory store, on a clock the test moves (`pass`) when built
//                            with ManualClock, else on the real clock;
//   redis_schedule_harness   the Redis store on a fresh namespace of one redis-server shared
//                            by the test executable (`pass` waits for real: the server's
//                            clock times windows and leases), plus `other`, a second store
//                            object on the same namespace as another process would have.
//
// Use run_scenario<H>(scenario): builds a harness, runs scenario(h) to completion on its
// context, then stops what the harness started.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/mpl/list.hpp>
#include <chrono>
#include <corvo/core/timeout.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/memory_store.hpp>
#include <corvo/schedule/redis_store.hpp>
#include <exception>
#include <string>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace corvo::test {

/// The redis-server every Redis harness of this executable uses (started on first use).
inline redis_server& shared_schedule_server() {
  static redis_server server;
  return server;
}

/// A namespace no other harness of this executable has used.
inline std::string next_schedule_namespace() {
  static int n = 0;
  return "sched" + std::to_string(++n);
}

template <unsigned Shards, bool ManualClock = false>
struct memory_schedule_harness {
  boost::asio::io_context context;
  schedule::time_point clock_now = schedule::now();
  schedule::memory_store store{context.get_executor(), Shards};
  /// One process: the same store.
  schedule::store& other = store;
  /// How long before its due time a claim's next_due names a task scheduled well ahead.
  static constexpr std::chrono::milliseconds compact_lead{0};

  memory_schedule_harness() {
    if constexpr (ManualClock) {
      store.set_clock([this] { return clock_now; });
    }
  }
  /// Moves the manual clock by `d` (with the real clock: waits `d`).
  boost::asio::awaitable<void> pass(std::chrono::milliseconds d) {
    if constexpr (ManualClock) {
      clock_now += d;
      co_return;
    } else {
      co_await corvo::sleep_for(d);
    }
  }
  void stop() {}
};

/// Where a Redis harness's stores keep the tasks scheduled ahead (redis_store_options::compact).
enum class compact_tier {
  by_default,  ///< the default: the tasks due later than compact_after (a minute) from now
  all,         ///< compact_after 0: every task scheduled ahead of now, until a claim promotes it
  off,         ///< none: every task in the due sets (the tests of that layout)
};

/// The Redis store on the executable's shared server. `CompatibleLeases`:
/// redis_store_options::compatible_leases of both stores; `Compact`: their compact tier.
template <unsigned Shards, bool CompatibleLeases = false,
          compact_tier Compact = compact_tier::by_default>
struct redis_schedule_harness {
  boost::asio::io_context context;
  std::string name_space = next_schedule_namespace();
  redis::client conn{context.get_executor(),
                     redis::client_config::from_url(shared_schedule_server().url())};
  schedule::redis_store store{conn, redis::client_config::from_url(shared_schedule_server().url()),
                              options()};
  /// Another store object on the namespace, as another process would have.
  schedule::redis_store second{conn, redis::client_config::from_url(shared_schedule_server().url()),
                               options()};
  schedule::store& other = second;
  /// How long before its due time a claim's next_due names a task scheduled well ahead (the
  /// compact tier's move into the due sets, compact_after before it).
  static constexpr std::chrono::milliseconds compact_lead{
      Compact == compact_tier::by_default ? 60'000 : 0};

  schedule::redis_store_options options() const {
    schedule::redis_store_options o{
        .name_space = name_space, .shards = Shards, .compatible_leases = CompatibleLeases};
    if constexpr (Compact == compact_tier::all) {
      o.compact_after = std::chrono::milliseconds::zero();
    } else if constexpr (Compact == compact_tier::off) {
      o.compact = false;
    }
    return o;
  }

  redis_schedule_harness() {
    boost::asio::co_spawn(context, conn.run(), [](std::exception_ptr) {});
  }
  /// Waits `d` for real (the server's clock times windows and leases).
  boost::asio::awaitable<void> pass(std::chrono::milliseconds d) { co_await corvo::sleep_for(d); }
  void stop() { conn.cancel(); }
};

/// Both stores with `Shards` shards, for BOOST_AUTO_TEST_CASE_TEMPLATE.
template <unsigned Shards, bool ManualClock = false>
using schedule_stores =
    boost::mpl::list<memory_schedule_harness<Shards, ManualClock>, redis_schedule_harness<Shards>>;

/// Builds an H, runs scenario(h) on its context to completion (rethrowing its failure), then
/// stops the harness's background work.
template <class H, class Scenario>
void run_scenario(Scenario scenario) {
  H h;
  run(h.context, scenario(h), [&] { h.stop(); });
}

}  // namespace corvo::test
