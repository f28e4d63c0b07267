#pragma once
// The memory store's task events: a capped buffer per shard, in process, and its reader
// (memory_store::events). Single-threaded, on the store's executor.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <corvo/schedule/events.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace corvo::schedule::detail {

class memory_event_log {
 public:
  memory_event_log(asio::any_io_executor executor, unsigned shards);

  /// Throws std::invalid_argument for max_len 0.
  void configure(events_options options);
  bool enabled() const noexcept { return options_.enabled; }

  /// Appends `e` to its shard's buffer (when enabled), numbering it, and wakes the readers.
  void record(task_event e);

  /// A reader from `query.from` (see memory_store::events).
  std::unique_ptr<event_reader> reader(event_query query);

 private:
  struct state;
  class reader_impl;
  std::shared_ptr<state> state_;
  events_options options_;
};

}  // namespace corvo::schedule::detail
