#include "queues.hpp"

#include <signal.h>
#include <unistd.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/kafka/error.hpp>
#include <corvo/queue/item.hpp>
#include <iostream>
#include <stdexcept>

namespace coupon_issue {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Request ids: unique per API process start (its start time and pid) and request.
std::string instance_prefix() {
  return std::to_string(now_ms()) + "-" + std::to_string(::getpid()) + "-";
}

}  // namespace

std::string_view to_string(queue_mode m) noexcept {
  return m == queue_mode::redis ? "redis" : "kafka";
}

queue_mode queue_mode_from(std::string_view text) {
  if (text == "redis") {
    return queue_mode::redis;
  }
  if (text == "kafka") {
    return queue_mode::kafka;
  }
  throw std::invalid_argument("queue must be redis or kafka, not \"" + std::string(text) + "\"");
}

// ---- request_sender -------------------------------------------------------------------------

request_sender::request_sender(asio::any_io_executor executor, corvo::redis::client& redis,
                               std::string name, std::size_t max_batch)
    : executor_(executor),
      mode_(queue_mode::redis),
      redis_(std::make_unique<corvo::queue::producer>(redis, std::move(name))),
      prefix_(instance_prefix()),
      batches_(executor, max_batch,
               [this](std::vector<issue_request>& batch) { return flush_batch(batch); }) {}

request_sender::request_sender(asio::any_io_executor executor,
                               const corvo::kafka::client_config& config, std::string topic,
                               std::size_t max_batch)
    : executor_(executor),
      mode_(queue_mode::kafka),
      kafka_(std::make_unique<corvo::kafka::producer>(executor, config)),
      topic_(std::move(topic)),
      prefix_(instance_prefix()),
      batches_(executor, max_batch,
               [this](std::vector<issue_request>& batch) { return flush_batch(batch); }) {}

request_sender::~request_sender() = default;

asio::awaitable<void> request_sender::run() {
  std::exception_ptr ended;
  try {
    co_await batches_.run();
  } catch (...) {
    ended = std::current_exception();
  }
  if (kafka_) {
    co_await asio::this_coro::reset_cancellation_state();
    co_await kafka_->close(std::chrono::seconds(2));
  }
  std::rethrow_exception(ended);
}

asio::awaitable<void> request_sender::send(issue_request& r) {
  r.seq = ++seq_;
  r.id = prefix_ + std::to_string(r.seq);
  r.at_ms = now_ms();
  try {
    co_await batches_.submit(r);  // a copy: `r` stays the caller's
  } catch (...) {
    ++failed_;
    throw;
  }
  ++accepted_;
}

asio::awaitable<void> request_sender::flush_batch(std::vector<issue_request>& batch) {
  std::vector<std::string> bodies;
  std::vector<std::string> keys;
  bodies.reserve(batch.size());
  for (const auto& r : batch) {
    bodies.push_back(encode(r));
    keys.push_back(r.coupon);
  }
  co_await flush(bodies, keys);
}

asio::awaitable<void> request_sender::flush(std::vector<std::string>& bodies,
                                            std::vector<std::string>& keys) {
  if (mode_ == queue_mode::redis) {
    co_await redis_->push_raw_batch(std::move(bodies));
    co_return;
  }
  // Every send of the batch at once, in order (the producer keeps a partition's order);
  // done when every delivery report arrived.
  struct reports {
    std::size_t open = 0;
    boost::system::error_code error;
    std::unique_ptr<asio::steady_timer> all_in;
  };
  auto state = std::make_shared<reports>();
  state->all_in =
      std::make_unique<asio::steady_timer>(executor_, asio::steady_timer::time_point::max());
  state->open = bodies.size();
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    corvo::kafka::outgoing_message m;
    m.topic = topic_;
    m.key = std::string_view(keys[i]);
    m.value = bodies[i];
    kafka_->async_send(std::move(m),
                       [state](boost::system::error_code ec, corvo::kafka::delivery_report) {
                         if (ec && !state->error) {
                           state->error = ec;
                         }
                         if (--state->open == 0) {
                           state->all_in->cancel();
                         }
                       });
  }
  while (state->open > 0) {
    boost::system::error_code ignored;
    co_await state->all_in->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  if (state->error) {
    throw boost::system::system_error(state->error, "kafka send");
  }
}

// ---- processor ------------------------------------------------------------------------------

processor::processor(asio::any_io_executor executor, coupon_store& store, std::size_t max_batch,
                     std::uint64_t crash_after_batches)
    : executor_(executor),
      store_(store),
      crash_after_(crash_after_batches),
      writer_(executor, max_batch, [this](std::vector<decision>& batch) { return commit(batch); }) {
}

asio::awaitable<void> processor::load() {
  co_await store_.load(issuer_);
}

asio::awaitable<void> processor::handle(std::string_view message) {
  auto d = decode(message);  // throws invalid_argument: no request id
  auto result = issuer_.decide(std::move(d.request), d.error);
  if (result.redelivered) {
    ++stats_.recognised;
    co_return;
  }
  if (stats_.decided++ == 0) {
    stats_.first_decision = std::chrono::steady_clock::now();
  }
  ++stats_.outcomes[result.decided.result];
  co_await writer_.submit(std::move(result.decided));
}

asio::awaitable<void> processor::commit(std::vector<decision>& batch) {
  corvo::backoff delays({std::chrono::milliseconds{50}, std::chrono::milliseconds{2000}});
  for (;;) {
    try {
      co_await store_.persist(batch);
      break;
    } catch (const db::database_error& e) {
      ++stats_.write_retries;
      CORVO_LOG(error, "coupon_issue")
          << "committing " << batch.size() << " decisions failed (retrying): " << e.what();
    }
    co_await corvo::sleep_for(delays.next());
  }
  ++stats_.batches;
  stats_.last_commit = std::chrono::steady_clock::now();
  if (crash_after_ != 0 && stats_.batches == crash_after_) {
    std::cout << "coupon_issue: crashing on purpose (SIGKILL) after committing batch "
              << stats_.batches << ", before acknowledging it" << std::endl;
    ::kill(::getpid(), SIGKILL);
  }
}

asio::awaitable<void> handle_queue_item(processor* p, std::string body) {
  try {
    co_await p->handle(body);
  } catch (const std::invalid_argument& e) {
    throw corvo::queue::permanent_error(std::string("no request in the message: ") + e.what(),
                                        "decode_error");
  }
}

asio::awaitable<void> handle_kafka_message(processor* p, std::string_view value) {
  try {
    co_await p->handle(value);
  } catch (const std::invalid_argument& e) {
    throw corvo::kafka::permanent_error(std::string("no request in the message: ") + e.what());
  }
}

}  // namespace coupon_issue
