#pragma once
// What both queue kinds call for each item, and what they count.

#include <boost/asio/awaitable.hpp>
#include <corvo/queue/item.hpp>
#include <cstdint>
#include <functional>

namespace corvo::queue {

namespace asio = boost::asio;

/// Handles one item; completes when the item is done. Throws permanent_error for an item no
/// retry can help, anything else for a failure worth another delivery (reliable_queue). A
/// typed_handlers object converts to this. The item outlives the returned awaitable.
using handler_type = std::function<asio::awaitable<void>(const item&)>;

/// Counters of one consumer (work_queue or reliable_queue), read on its executor.
struct queue_stats {
  std::uint64_t taken = 0;          ///< items popped or moved to the processing list
  std::uint64_t takes = 0;          ///< Redis calls that took items (taken / takes = batch size)
  std::uint64_t succeeded = 0;      ///< handled and acknowledged (work_queue: handled)
  std::uint64_t retried = 0;        ///< failed and put back in the queue (reliable)
  std::uint64_t delayed = 0;        ///< failed and put in the delayed set (retry_delay)
  std::uint64_t promoted = 0;       ///< due delayed items this consumer moved to the queue
  std::uint64_t dead_lettered = 0;  ///< sent to the dead letters (permanent, or attempts used up)
  std::uint64_t stale = 0;          ///< acks/failures refused: the reaper had taken the item
  std::uint64_t handed_back = 0;    ///< cut at a stop and returned to the queue uncounted
  std::uint64_t adopted = 0;        ///< found in the own processing list after a lost reply
  std::uint64_t redis_errors = 0;   ///< Redis calls that failed (and were retried)
  std::uint64_t heartbeats = 0;     ///< heartbeats renewed (reliable)
};

}  // namespace corvo::queue
