#include <corvo/queue/reliable_queue.hpp>
#include <corvo/queue/work_queue.hpp>

#include "consumer_engine.hpp"

namespace corvo::queue {

work_queue::work_queue(redis::client& redis, queue_options options, handler_type handler)
    : engine_(std::make_shared<detail::consumer_engine>(
          redis, std::move(options), std::move(handler), detail::delivery::at_most_once)) {}

work_queue::~work_queue() {
  engine_->abandon();
}

asio::awaitable<void> work_queue::run() {
  auto engine = engine_;  // outlives this object when it is destroyed during the run
  co_await engine->run();
}

const queue_stats& work_queue::stats() const noexcept {
  return engine_->stats;
}

const queue_options& work_queue::options() const noexcept {
  return engine_->options;
}

reliable_queue::reliable_queue(redis::client& redis, queue_options options, handler_type handler)
    : engine_(std::make_shared<detail::consumer_engine>(
          redis, std::move(options), std::move(handler), detail::delivery::reliable)) {}

reliable_queue::~reliable_queue() {
  engine_->abandon();
}

asio::awaitable<void> reliable_queue::run() {
  auto engine = engine_;  // outlives this object when it is destroyed during the run
  co_await engine->run();
}

const std::string& reliable_queue::consumer() const noexcept {
  return engine_->options.consumer;
}

const queue_stats& reliable_queue::stats() const noexcept {
  return engine_->stats;
}

const queue_options& reliable_queue::options() const noexcept {
  return engine_->options;
}

const reap_result& reliable_queue::reaped() const noexcept {
  return engine_->reaps.totals();
}

}  // namespace corvo::queue
