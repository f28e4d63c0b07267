#pragma once
// Pushes items onto a queue (LPUSH), in the envelope both queue kinds read (item.hpp).
//
//   corvo::queue::producer coupons(redis, "coupons");
//   std::string id = co_await coupons.push_raw("user-7");                 // bytes as they are
//   co_await coupons.push("coupon.request", coupon_request{"user-7"});    // typed, JSON
//
// Each push gets a new id: this producer's random prefix and a counter ("3f9a1c2b.42").
// An item is in Redis when the awaitable completes; a push that fails (Redis down) throws and
// may or may not have happened (the connection's rules: redis/connection.hpp). Batches go in
// one LPUSH, so one batch lands entirely or not at all.

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>
#include <corvo/queue/item.hpp>
#include <corvo/redis/client.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::queue {

namespace asio = boost::asio;

class producer {
 public:
  /// Pushes onto queue `queue` through `redis` (which must outlive this object).
  producer(redis::client& redis, std::string queue);

  /// Pushes `body` as it is; returns the item's id.
  asio::awaitable<std::string> push_raw(std::string body);

  /// Pushes `bodies` in one LPUSH (in order: the first is consumed first); returns their ids.
  asio::awaitable<std::vector<std::string>> push_raw_batch(std::vector<std::string> bodies);

  /// Pushes {"type": type, "payload": value} (boost::json::value_from(value)); the body
  /// typed_handlers reads with its default options. Returns the item's id.
  template <class T>
  asio::awaitable<std::string> push(std::string type, const T& value) {
    return push_raw(typed_body(type, boost::json::value_from(value)));
  }

  /// The body push(type, value) writes: {"type": type, "payload": payload} serialized.
  static std::string typed_body(std::string_view type, const boost::json::value& payload);

  /// The id the next push gets (and advances the counter).
  std::string next_id();

  const queue_keys& keys() const noexcept { return keys_; }

 private:
  redis::client& redis_;
  queue_keys keys_;
  std::string prefix_;
  std::uint64_t counter_ = 0;
};

}  // namespace corvo::queue
