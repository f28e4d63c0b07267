#pragma once
// The reaper of a reliable queue: gives the items of dead consumers back to the queue.
//
// A consumer is dead when its heartbeat key has expired (heartbeat_ttl after its last
// renewal). For each consumer registered in the queue's `consumers` set whose heartbeat is
// gone, one Lua script (atomic: it re-checks the heartbeat) moves every item of its
// processing list back to the tail of the queue (consumed next, oldest first) with its
// attempt count raised by one — or, when that delivery was its max_attempts-th, to the dead
// letters with the reason "consumer C stopped (heartbeat expired) during attempt N". A
// consumer whose list is empty and whose last heartbeat is older than forget_after is
// removed from the set.
//
// Any number of processes may reap the same queue at once: each script call is atomic and
// the second finds the list already empty. Every reliable_queue runs one by default
// (queue_options::reap); a process that only produces can run one too.

#include <boost/asio/awaitable.hpp>
#include <corvo/queue/item.hpp>
#include <corvo/queue/options.hpp>
#include <corvo/redis/client.hpp>
#include <cstddef>
#include <string>

namespace corvo::queue {

namespace asio = boost::asio;

struct reap_result {
  std::size_t dead_consumers = 0;  ///< consumers whose heartbeat had expired
  std::size_t requeued = 0;        ///< items put back in the queue
  std::size_t dead_lettered = 0;   ///< items whose attempts were used up
  std::size_t forgotten = 0;       ///< consumers removed from the consumers set
};

class reaper {
 public:
  /// Reaps queue `options.name` with its max_attempts, forget_after, dead_letter_max and
  /// reap_interval, through `redis` (which must outlive this object).
  reaper(redis::client& redis, queue_options options);

  /// One pass over the registered consumers. Throws on Redis errors.
  asio::awaitable<reap_result> reap_once();

  /// Recovers `consumer`'s items; with `even_if_alive`, without checking its heartbeat (a
  /// consumer with a fixed id reaps its own previous life at start-up).
  asio::awaitable<reap_result> reap_consumer(std::string consumer, bool even_if_alive = false);

  /// reap_once() every reap_interval until cancelled; Redis errors are logged and the next
  /// pass tries again. Cancellation (terminal): throws operation_aborted.
  asio::awaitable<void> run();

  /// Totals of every pass so far.
  const reap_result& totals() const noexcept { return totals_; }

 private:
  redis::client& redis_;
  queue_options options_;
  queue_keys keys_;
  reap_result totals_;
};

}  // namespace corvo::queue
