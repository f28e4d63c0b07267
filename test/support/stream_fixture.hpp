#pragma once
// Helpers for the stream tests: a typed test event, a consumer run in the background that
// the test stops by cancellation, and queries of a group's state.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <corvo/redis/client.hpp>
#include <corvo/stream/consumer.hpp>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace corvo::test {

/// The typed event of the stream tests.
struct order {
  std::string id;
  std::int64_t amount = 0;
};

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const order& o) {
  v = {{"id", o.id}, {"amount", o.amount}};
}

inline order tag_invoke(boost::json::value_to_tag<order>, const boost::json::value& v) {
  const auto& o = v.as_object();
  return order{std::string(o.at("id").as_string()), o.at("amount").as_int64()};
}

/// A consumer's run() in the background; stop() cancels it (terminal).
class background_consumer {
 public:
  background_consumer(const boost::asio::any_io_executor& ex, stream::consumer& c,
                      stream::consumer::handler h)
      : state_(std::make_shared<state>()) {
    auto s = state_;
    boost::asio::co_spawn(
        ex, c.run(std::move(h)),
        boost::asio::bind_cancellation_slot(s->stop.slot(), [s](std::exception_ptr e) {
          s->done = true;
          s->stopped_at = std::chrono::steady_clock::now();
          s->failure = e;
        }));
  }
  ~background_consumer() { stop(); }
  background_consumer(const background_consumer&) = delete;
  background_consumer& operator=(const background_consumer&) = delete;

  /// Emits terminal cancellation (once); returns when it was emitted.
  std::chrono::steady_clock::time_point stop() {
    if (!state_->stop_sent && !state_->done) {
      state_->stop_sent = true;
      state_->stop_at = std::chrono::steady_clock::now();
      state_->stop.emit(boost::asio::cancellation_type::terminal);
    }
    return state_->stop_at;
  }
  bool done() const noexcept { return state_->done; }
  std::chrono::steady_clock::time_point stopped_at() const noexcept { return state_->stopped_at; }
  std::exception_ptr failure() const noexcept { return state_->failure; }

 private:
  struct state {
    boost::asio::cancellation_signal stop;
    bool stop_sent = false;
    bool done = false;
    std::chrono::steady_clock::time_point stop_at, stopped_at;
    std::exception_ptr failure;
  };
  std::shared_ptr<state> state_;
};

/// XPENDING extended rows: id, consumer, idle ms, deliveries.
using pending_rows = std::vector<std::tuple<std::string, std::string, std::int64_t, std::uint64_t>>;

/// Every pending entry of `group` on `stream` (up to 1,000,000).
inline boost::asio::awaitable<pending_rows> pending_of(redis::client& c, std::string stream,
                                                       std::string group) {
  redis::request req;
  req.push("XPENDING", stream, group, "-", "+", 1'000'000);
  redis::response<pending_rows> resp;
  co_await c.exec(req, resp);
  co_return std::move(std::get<0>(resp).value());
}

/// The entries of a stream (XRANGE - +): id → flat fields.
using stream_rows = std::vector<std::pair<std::string, std::vector<std::string>>>;

inline boost::asio::awaitable<stream_rows> range_of(redis::client& c, std::string stream) {
  redis::request req;
  req.push("XRANGE", stream, "-", "+");
  redis::response<stream_rows> resp;
  co_await c.exec(req, resp);
  co_return std::move(std::get<0>(resp).value());
}

}  // namespace corvo::test
