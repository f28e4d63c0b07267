#pragma once
// How many task events (events.hpp) the stores of this process wrote, by kind: what
// ops::watch_scheduler exports as corvo_schedule_events_total{namespace,kind}
// (docs/scheduler.md, "Task events").
//
//   const auto written = corvo::schedule::events_written(sched.tasks());
//   std::cout << written.of(corvo::schedule::event_kind::dead) << " dead-letter events\n";
//
// A store counts as it writes (one relaxed atomic increment per call that wrote events): the
// memory store each event it appends; the Redis store the events its scripts report having
// written (a script that changes a task returns what it appended to the shard's stream, so a
// claim's lease-expiry `failed` and `dead` events count too). Events written by other
// processes of the namespace are theirs to count.

#include <array>
#include <corvo/schedule/events.hpp>
#include <cstddef>
#include <cstdint>

namespace corvo::schedule {

class store;

/// Events written, by kind.
struct event_counts {
  /// Indexed by the event_kind's value (scheduled = 0 … cancelled = 5).
  std::array<std::uint64_t, 6> by_kind{};

  std::uint64_t of(event_kind kind) const noexcept {
    return by_kind[static_cast<std::size_t>(kind)];
  }
  /// Every kind added up.
  std::uint64_t total() const noexcept;
};

/// The events `tasks` wrote since it was made, by kind: tasks.events_written() (a virtual of
/// store; memory_store and redis_store count). All zero for a store with events off and for
/// a store that writes no events. Thread-safe: may be read on another thread than the store's.
event_counts events_written(const store& tasks);

}  // namespace corvo::schedule
