#pragma once
// The consumer behind work_queue (at most once: BRPOP/RPOP) and reliable_queue (at least
// once: BLMOVE/take script into a processing list, acks, heartbeat, reaper). One fetch
// loop, handlers in parallel up to max_in_flight, settling and a graceful stop; the
// delivery kind decides which Redis commands take and settle an item.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <corvo/queue/handler.hpp>
#include <corvo/queue/options.hpp>
#include <corvo/queue/reaper.hpp>
#include <corvo/redis/client.hpp>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace corvo::queue::detail {

enum class delivery { at_most_once, reliable };

struct consumer_engine {
  consumer_engine(redis::client& redis, queue_options options, handler_type handler, delivery kind);

  // The blocking client goes first: its pending pop's completion handler is bound to a
  // cancellation slot of fetch_signal (see run()), which must still exist when it is cleared.
  ~consumer_engine() { blocking.reset(); }

  asio::awaitable<void> run();

  // The owner (reliable_queue, work_queue) is being destroyed during run(): stops the run as
  // a cancellation would (the run keeps this object alive until it ends).
  void abandon();

  // One item being handled. Its handler runs in a coroutine bound to `signal`, so a stop can
  // cancel this run alone.
  struct run_state {
    std::string value;  // the exact bytes in Redis (what an ack removes)
    item it;
    asio::cancellation_signal signal;
    bool cut = false;
  };
  using run_iterator = std::list<run_state>::iterator;

  redis::client& redis;
  queue_options options;
  handler_type handler;
  delivery kind;
  queue_keys keys;
  std::string processing_key;
  std::string heartbeat_key;
  queue_stats stats;
  reaper reaps;

  bool running = false;
  bool stopping = false;   // no new takes; cut runs are handed back
  bool finishing = false;  // every run ended: the acker sends what is left and ends
  bool adopt_needed = false;
  bool delayed_added = false;  // an item was delayed since the promoter last looked
  bool fetch_done = false;
  bool fetch_sleeping = false;  // the fetch loop waits out a Redis failure: nothing in flight
  bool abandoned = false;       // the owner was destroyed during run(): stop
  asio::steady_timer* ack_sleep = nullptr;  // the acker's retry delay, cut when finishing
  std::exception_ptr fetch_failure;
  std::optional<asio::any_io_executor> executor;
  std::unique_ptr<redis::client> blocking;
  std::list<run_state> runs;
  std::size_t active = 0;
  std::vector<std::string> acks;      // finished, not yet sent
  std::vector<std::string> flushing;  // being acked now
  asio::cancellation_signal fetch_signal;
  // Broadcast notifiers: expiry at max, woken by cancel().
  std::unique_ptr<asio::steady_timer> slot_freed;
  std::unique_ptr<asio::steady_timer> idle;
  std::unique_ptr<asio::steady_timer> acks_pending;
  std::unique_ptr<asio::steady_timer> fetch_finished;
  std::unique_ptr<asio::steady_timer> promote_wakeup;

  bool reliable() const noexcept { return kind == delivery::reliable; }

  asio::awaitable<void> fetch_loop();
  asio::awaitable<std::vector<std::string>> take(std::size_t room);
  asio::awaitable<std::optional<std::string>> take_blocking();
  asio::awaitable<void> adopt_orphans();
  void start(std::string value);
  asio::awaitable<void> run_item(run_iterator run);
  void finished(run_iterator run, const std::exception_ptr& e);
  asio::awaitable<void> settle_failure(const std::string& value, const std::string& reason,
                                       bool permanent);
  asio::awaitable<void> hand_back(const std::string& value);
  asio::awaitable<bool> flush_acks(bool& unreachable);
  asio::awaitable<void> acker();
  asio::awaitable<void> beat();
  asio::awaitable<void> heartbeat_loop();
  asio::awaitable<void> promote_loop();
  asio::awaitable<void> start_up();
  asio::awaitable<void> leave();
  asio::awaitable<void> wait_for_fetch_or_cancel();
  // Waits until `done()` or `timeout`; true when done.
  asio::awaitable<bool> wait_until(asio::steady_timer& notifier, std::function<bool()> done,
                                   std::chrono::steady_clock::duration timeout);
};

}  // namespace corvo::queue::detail
