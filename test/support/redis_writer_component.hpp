#pragma once
// The user component of the failover test programs (failover_process, cluster_failover_process):
// INCR one key every `every` through a Redis client, and report a failure to the health
// dependency it runs on at once (it does not wait for the monitor's next probe), as a user's
// component should.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <corvo/health/monitor.hpp>
#include <string>

namespace corvo::redis {
class client;
}

namespace corvo::test {

/// Runs until cancelled: `INCR key` every `every`. A failed INCR (other than by
/// cancellation) is reported to `dep` as "LABEL: error text" and rethrown, ending the run;
/// cancellation is rethrown unreported. `redis` must outlive the run.
boost::asio::awaitable<void> redis_writer_component(
    redis::client& redis, health::dependency dep, std::string key, std::string label,
    std::chrono::milliseconds every = std::chrono::milliseconds(20));

}  // namespace corvo::test
