#include <corvo/core/backoff.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/queue/reaper.hpp>

#include "scripts.hpp"

namespace corvo::queue {

reaper::reaper(redis::client& redis, queue_options options)
    : redis_(redis), options_(std::move(options)), keys_(options_.name) {
  options_.validate();
}

asio::awaitable<reap_result> reaper::reap_consumer(std::string consumer, bool even_if_alive) {
  std::vector<std::string> keys{keys_.heartbeat(consumer), keys_.processing(consumer),
                                keys_.queue(), keys_.dead(), keys_.consumers()};
  std::vector<std::string> args{
      consumer, std::to_string(options_.max_attempts), std::to_string(options_.dead_letter_max),
      std::to_string(options_.forget_after.count()), even_if_alive ? "1" : "0"};
  redis::response<std::vector<long long>> resp;
  co_await detail::reap.exec(redis_, std::move(keys), std::move(args), resp);
  const auto& counts = std::get<0>(resp).value();
  reap_result r;
  if (counts.size() != 3) {
    throw std::runtime_error("queue reap script: unexpected reply");
  }
  if (counts[0] < 0) {
    co_return r;  // alive
  }
  r.dead_consumers = even_if_alive ? 0 : 1;
  r.requeued = static_cast<std::size_t>(counts[0]);
  r.dead_lettered = static_cast<std::size_t>(counts[1]);
  r.forgotten = static_cast<std::size_t>(counts[2]);
  totals_.dead_consumers += r.dead_consumers;
  totals_.requeued += r.requeued;
  totals_.dead_lettered += r.dead_lettered;
  totals_.forgotten += r.forgotten;
  if (r.requeued + r.dead_lettered > 0) {
    CORVO_LOG(warning, "queue") << "queue " << keys_.queue() << ": recovered the items of "
                                << (even_if_alive ? "this consumer's previous run "
                                                  : "dead consumer ")
                                << consumer << ": " << r.requeued << " back in the queue, "
                                << r.dead_lettered << " dead-lettered";
  }
  co_return r;
}

asio::awaitable<reap_result> reaper::reap_once() {
  redis::request req;
  req.push("ZRANGE", keys_.consumers(), 0, -1);
  redis::response<std::vector<std::string>> resp;
  co_await redis_.exec(req, resp);
  reap_result pass;
  for (const auto& consumer : std::get<0>(resp).value()) {
    const auto r = co_await reap_consumer(consumer);
    pass.dead_consumers += r.dead_consumers;
    pass.requeued += r.requeued;
    pass.dead_lettered += r.dead_lettered;
    pass.forgotten += r.forgotten;
  }
  co_return pass;
}

asio::awaitable<void> reaper::run() {
  for (;;) {
    std::exception_ptr failed;
    try {
      co_await reap_once();
    } catch (...) {
      failed = std::current_exception();
    }
    if (failed) {
      if (is_operation_aborted(failed)) {
        std::rethrow_exception(failed);
      }
      CORVO_LOG(warning, "queue") << "queue " << keys_.queue()
                                  << ": reaper pass failed: " << corvo::describe(failed);
    }
    co_await sleep_for(options_.effective_reap_interval());
  }
}

}  // namespace corvo::queue
