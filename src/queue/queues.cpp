#include <corvo/queue/reliable_queue.hpp>
#include <corvo/queue/work_queue.hpp>

#include "consumer_engine.hpp"

namespace corvo::queue {

namespace {
// The engine is taken when run() is called, not when the coroutine first resumes: it
// outlives the queue object when that is destroyed before or during the run.
asio::awaitable<void> run_engine(std::shared_ptr<detail::consumer_engine> engine) {
  co_await engine->run();
}
}  // namespace

work_queue::work_queue(redis::client& redis, queue_options options, handler_type handler)
    : engine_(std::make_shared<detail::consumer_engine>(
          redis, std::move(options), std::move(handler), detail::delivery::at_most_once)) {}

work_queue::~work_queue() {
  engine_->abandon();
}

asio::awaitable<void> work_queue::run() {
  return run_engine(engine_);
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
  return run_engine(engine_);
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
