#pragma once
// Options of a work_queue and a reliable_queue, by fields or from the application's
// configuration (one section per queue).
//
//   "coupon_queue": {"name": "coupons", "max_in_flight": 32, "max_attempts": 3}
//   auto options = corvo::queue::queue_options::from(app_config, "coupon_queue");
//
// Keys (all optional but `name`; durations as ms or "250ms", "2s", "5m"):
//   name                the queue (the LIST key producers push to)
//   consumer            this consumer's id (reliable; default <host>-<pid>-<random>)
//   max_in_flight       handlers running at once (64)
//   batch               most items taken from Redis at once (64, at most 1000)
//   block_timeout       longest blocking pop (BRPOP/BLMOVE) before it is re-issued (1s);
//                       also bounds how long a stop waits for the pop in progress
//   drain_timeout       how long running handlers may finish when the queue stops (10s);
//                       reliable: bounds the whole stop, Redis waits included
//   max_attempts        deliveries of an item before it is dead-lettered (reliable; 5)
//   heartbeat_ttl       a consumer whose heartbeat is older is dead (reliable; 10s)
//   heartbeat_interval  how often the heartbeat is renewed (reliable; heartbeat_ttl / 3)
//   reap                run the reaper in this consumer (reliable; true)
//   reap_interval       how often the reaper looks for dead consumers (heartbeat_ttl / 2)
//   forget_after        a dead consumer with an empty processing list is forgotten this long
//                       after its last heartbeat (1h)
//   dead_letter_max     dead letters kept; older ones are dropped (100000)
//   retry_delay         reliable: a failed item waits this long before its next attempt,
//                       doubled per further failure (0: back in the queue at once; 0)
//   retry_delay_max     reliable: the longest retry delay (60s)
// Unknown keys in the section are refused (config_error naming the nearest known key).
// Every process of one reliable queue must use the same max_attempts and heartbeat_ttl:
// the reaper applies its own values to other consumers' items.

#include <chrono>
#include <corvo/core/config.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace corvo::queue {

struct queue_options {
  std::string name;
  std::string consumer;
  std::size_t max_in_flight = 64;
  std::size_t batch = 64;
  std::chrono::milliseconds block_timeout{1000};
  std::chrono::milliseconds drain_timeout{10'000};
  std::uint32_t max_attempts = 5;
  std::chrono::milliseconds heartbeat_ttl{10'000};
  /// 0: heartbeat_ttl / 3.
  std::chrono::milliseconds heartbeat_interval{0};
  bool reap = true;
  /// 0: heartbeat_ttl / 2.
  std::chrono::milliseconds reap_interval{0};
  std::chrono::milliseconds forget_after{3'600'000};
  std::size_t dead_letter_max = 100'000;
  /// Reliable: the delay before the second attempt of a failed item; each further failure
  /// doubles it, up to retry_delay_max. The item waits in the queue's delayed set
  /// (queue_keys::delayed(), in Redis) and the consumers move it back to the queue when due.
  /// 0: a failed item goes back to the queue at once.
  std::chrono::milliseconds retry_delay{0};
  std::chrono::milliseconds retry_delay_max{60'000};

  /// The delay after the `failures`-th failed delivery of an item (failures >= 1).
  std::chrono::milliseconds retry_delay_after(std::uint32_t failures) const;

  /// Reads section `section` of `cfg` (see the header comment), then validate()s. Throws
  /// corvo::config_error naming the key.
  static queue_options from(const corvo::config& cfg, std::string_view section = "queue");

  /// Throws std::invalid_argument for values that cannot work (an empty name, a zero
  /// max_in_flight, batch or max_attempts, batch above 1000, a heartbeat interval not
  /// below the TTL).
  void validate() const;

  std::chrono::milliseconds effective_heartbeat_interval() const;
  std::chrono::milliseconds effective_reap_interval() const;

  /// <host>-<pid>-<4 random hex digits>: a new id per process start.
  static std::string generated_consumer_id();
};

}  // namespace corvo::queue
