#pragma once
// The durable store: tasks in Redis, claimed by Lua scripts (see src/schedule/redis_scripts.hpp
// for the key layout). Any number of processes can share a namespace; leases and fencing
// tokens keep one task with one live worker at a time.

#include <chrono>
#include <corvo/redis/client.hpp>
#include <corvo/schedule/store.hpp>
#include <memory>
#include <string>

namespace corvo::schedule {

struct redis_store_options {
  /// Key prefix: keys are `{<name_space>:<shard>}:due` etc.
  std::string name_space = "corvo";
  /// Shards of the namespace (fixed for its lifetime: changing it re-homes task ids). The
  /// count is stored in Redis, in the key `{<name_space>}:shards`, by the first store that
  /// uses the namespace; a store configured with another count refuses to work (open()
  /// throws, naming both counts and the key). 0: adopt the namespace's stored count (tools
  /// such as the CLI); open() throws when the namespace has none yet.
  unsigned shards = 16;
  /// Dead-letter cap per shard: oldest entries beyond it are dropped.
  std::size_t dead_max_count = 100'000;
  std::chrono::seconds dead_max_age = std::chrono::hours(24 * 7);
  /// Opt-in durability across a failover: schedule(), cancel() and ack() return only once
  /// this many replicas have acknowledged the write (`WAIT`, sent in the same request as the
  /// script, so on the same connection to the same node). Fewer within `wait_timeout`: the
  /// call throws std::runtime_error (the write is applied on the master, but a failover may
  /// lose it). 0 (the default): asynchronous replication, see docs/scheduler.md.
  unsigned wait_replicas = 0;
  std::chrono::milliseconds wait_timeout{1000};
  /// The priority rule's step (task.hpp `priority`): claims take due tasks in the order of
  /// due time minus this per level of priority, so a task is passed over only by tasks of a
  /// higher level that came due less than this per level of difference after it. Every
  /// process of a namespace should use the same value.
  std::chrono::milliseconds priority_aging{10'000};
  /// Claims also take tasks due within this much after the server's now; the dispatcher
  /// starts each at its due time (dispatcher.hpp). When due times are dense (thousands per
  /// second) one claim then serves all that fall due while it travels, instead of one claim
  /// per due time, and a handler starts at its due time rather than a round trip after it.
  /// 0: only tasks already due. A task cancelled within this window before its due time may
  /// still run (as one cancelled while in flight). Config: `scheduler.redis.claim_ahead_us`.
  std::chrono::microseconds claim_ahead{500};
  /// Write each lease into its task's record, as versions before the lease tokens did (the
  /// claim rewrites the record with the try's attempt count, its occurrence and the token).
  /// Off (the default): a lease is kept in its token and the claim writes no record (about
  /// 40 % more tasks per second in a burst), but processes of those older versions would lose
  /// such leases' tasks. Turn it on in every process of a rolling upgrade from such a
  /// version, and off once none runs (docs/scheduler.md, "Upgrading"). Both kinds of lease are
  /// acked, nacked, extended and expired by this version either way. Config:
  /// `scheduler.redis.compatible_leases`.
  bool compatible_leases = false;
  /// Store a task due later than `compact_after` from now in the shard's compact tier: 1024
  /// small buckets per shard, by a hash of the id, that Redis keeps in its listpack
  /// encoding, about 230 bytes per waiting task with a UUID id and a 100-byte payload
  /// instead of about 360 in the due sets (docs/scheduler.md, "Memory"). A claim moves such
  /// tasks into the due sets `compact_after` before their due time, so claims, leases and
  /// acks run as fast as ever (a claim's next_due is the earlier of the due sets' earliest
  /// task and the next such move). Every call reads the tier whatever this setting (another
  /// process may have written it): off only stores this process's new tasks in the due sets.
  /// The buckets stay compact while each holds at most `hash-max-listpack-entries` (128 by
  /// default) tasks, about 100,000 per shard, and while a record (the payload plus about 15
  /// bytes) fits `hash-max-listpack-value`: 64 bytes by default, so raise it (256 holds a
  /// 200-byte payload); a bucket past either is still correct, in Redis's larger encoding.
  /// Processes of versions before this tier do not see its tasks: turn it off during a
  /// rolling upgrade from one (docs/scheduler.md, "Upgrading"). Config:
  /// `scheduler.redis.compact`, `scheduler.redis.compact_after`.
  bool compact = true;
  std::chrono::milliseconds compact_after{60'000};
  /// Task events (events.hpp; `scheduler.events.*`): off by default. On: every script that
  /// changes a task appends its event to the shard's stream `{<name_space>:<shard>}:events`
  /// (XADD MAXLEN ~ max_len) in the same script, so the event is written if and only if the
  /// change is. Off: the scripts write no stream (one more ARGV, '0').
  events_options events{};
};

class redis_store final : public store {
 public:
  /// `commands` carries every store call (the caller runs it); a standalone server or a
  /// Redis Cluster (every call touches one shard, i.e. one hash slot). `subscriber`
  /// configures the separate client watch_wakes() opens for SSUBSCRIBE (in a cluster it
  /// subscribes each shard's channel on the node that owns it).
  redis_store(redis::client& commands, redis::client_config subscriber,
              redis_store_options options = {});
  ~redis_store() override;

  const redis_store_options& options() const noexcept;

  /// Reads the namespace's shard count from `shard_count_key()`, storing ours there when the
  /// namespace has none (first use). Throws std::runtime_error naming both counts and the
  /// key when they differ, or, with `shards = 0`, when the namespace has no count. With
  /// `shards = 0` it adopts the stored count: shards(), shard_of() and keys_of() are valid
  /// only after it. Idempotent (one round trip, the first time); every other operation
  /// calls it first, so an explicit call is needed only to read shards() of an adopting
  /// store or to fail early.
  asio::awaitable<void> open() override;
  /// `{<name_space>}:shards`: one key, in its own slot, read once per store.
  std::string shard_count_key() const;

  /// The namespace's shard count (0 for an adopting store until open()).
  unsigned shards() const noexcept override;
  unsigned shard_of(std::string_view id) const noexcept override;

  asio::awaitable<void> schedule(task t) override;
  asio::awaitable<bool> schedule_if_absent(task t) override;
  /// The window is a key `{<name_space>:<shard>}:window:<id>` expiring with it (PX).
  asio::awaitable<dedup_outcome> schedule_deduplicated(task t, dedup_options options) override;
  /// The window of `key` is the key dedup_window_key(key), in its own slot, expiring with the
  /// window (PX); the task is in its id's shard. Up to four atomic steps (scripts), each on
  /// one slot: take the window, write the task, void the replaced one, restart the window;
  /// docs/scheduler.md (Deduplication by key) gives the protocol and what a crash between
  /// steps leaves. Each schedule also writes a small marker key in its task's shard,
  /// `{<name_space>:<shard>}:dedup:<ticket>`, that expires a minute after the window.
  asio::awaitable<dedup_result> schedule_deduplicated_by_key(task t, std::string key,
                                                             dedup_options options) override;
  /// `{<name_space>:dedup:<key>}:window`: the window of a deduplication key.
  std::string dedup_window_key(std::string_view key) const;
  asio::awaitable<std::optional<task>> get(std::string id) override;
  asio::awaitable<std::vector<task>> browse(std::size_t offset, std::size_t limit) override;
  asio::awaitable<bool> cancel(std::string id) override;
  asio::awaitable<bool> reschedule(std::string id, time_point due) override;
  asio::awaitable<store_stats> stats() override;

  asio::awaitable<claim_result> claim(unsigned shard, std::size_t limit,
                                      std::chrono::milliseconds lease) override;
  asio::awaitable<std::size_t> ack(unsigned shard, std::vector<completion> done) override;
  asio::awaitable<bool> nack(unsigned shard, failure failed) override;
  asio::awaitable<std::vector<bool>> extend(unsigned shard, std::vector<lease_ref> leases,
                                            std::chrono::milliseconds lease) override;

  /// Written to every shard's `{<name_space>:<shard>}:paused` set (one script per shard):
  /// a pause interrupted half-way (connection lost) holds on the shards it reached; call it
  /// again.
  asio::awaitable<void> pause(std::string type) override;
  /// Per shard, one script: lifts the pause, moves the shard's set-aside tasks of `type`
  /// back (O(set-aside tasks of the shard)) and publishes a wake-up.
  asio::awaitable<void> resume(std::string type) override;
  /// Read from shard 0.
  asio::awaitable<pause_state> paused() override;

  asio::awaitable<std::vector<task>> dead_letters(std::size_t offset, std::size_t limit) override;
  asio::awaitable<bool> replay(std::string id) override;
  asio::awaitable<std::size_t> purge(std::string id) override;

  /// Limits (limits.hpp). A standalone server's claim script takes the permit with the task,
  /// atomically; on a Redis Cluster the claim takes it in steps in the type's slot (see
  /// docs/scheduler.md, Limits). Keys per limited type: `{<name_space>:limit:<type>}:running`,
  /// `:starts`, `:waiting` (and more on a cluster). Throws std::invalid_argument for a
  /// concurrency of 0 or a rate of 0 starts.
  void set_limits(type_limits limits) override;
  /// Counts read at the client's clock: running = permits whose deadline is ahead, recent
  /// starts = starts within the last window, held = every shard's held set of the type.
  asio::awaitable<std::vector<limit_state>> limit_states() override;

  /// Standalone: one dedicated connection, one `XREAD BLOCK` over every shard's stream.
  /// Cluster: one dedicated connection per shard (each blocks on its shard's stream, on the
  /// master of its slot); a read merges what the shards returned by event time.
  /// events_from_now is resolved here (one round trip: each stream's last entry id), so
  /// nothing written after this call returns is missed. A reader past the entries a stream
  /// has trimmed (MAXLEN) goes on at the oldest entry still there (the events between are
  /// lost to it).
  asio::awaitable<std::unique_ptr<event_reader>> events(event_query query) override;
  /// `{<name_space>:<shard>}:events`: the shard's event stream.
  std::string events_key(unsigned shard) const;
  event_counts events_written() const noexcept override;

  /// Also wakes a shard when a permit its held tasks wait for is released.
  asio::awaitable<void> watch_wakes(std::function<void(unsigned shard)> on_wake) override;

  // Backup and restore (`corvo schedule export|import`).

  /// Tasks claimed now (state in_flight; due unset), by lease deadline (ties by id), as
  /// browse() pages.
  asio::awaitable<std::vector<task>> in_flight(std::size_t offset, std::size_t limit);
  /// Writes `t` back as a listing returned it, keeping what schedule() resets (attempts,
  /// last error, occurrence; an unset occurrence becomes the due time): state dead: into the
  /// dead-letter set, dead-lettered now (the caps apply); any other state: waiting at its
  /// due time (unset: at its occurrence), so a task exported in flight runs again. An upsert
  /// like schedule() (a run in flight of the id is fenced off); a paused type's task is set
  /// aside by the next claim. Throws std::invalid_argument for an empty id, max_attempts 0,
  /// an invalid own retry backoff or what encoding refuses (an empty type, a newline in the
  /// type).
  asio::awaitable<void> restore(task t);

  /// Moves the waiting tasks of the due sets due later than `compact_after` from now into the
  /// compact tier (redis_store_options::compact), e.g. those of a namespace that was used
  /// before the tier, or with it off: one script per shard per 1,000 tasks, each atomic, so
  /// it can run beside the dispatchers and be stopped and run again. Returns how many it
  /// moved. `corvo schedule compact`.
  asio::awaitable<std::size_t> compact_waiting();

  /// The keys of a shard, in the scripts' KEYS order (due, tasks, inflight, lease, dead, seq,
  /// wake channel, parked, paused, due:high, due:low, held; `due` holds the normal-priority
  /// tasks). For tools and tests.
  std::vector<std::string> keys_of(unsigned shard) const;

  /// The leased set of a shard: '<id> <token>' -> lease deadline (µs) for every task claimed
  /// and not yet acked or nacked (docs/scheduler.md, Key layout). For tools and tests.
  std::string leased_key(unsigned shard) const;

 private:
  asio::awaitable<bool> schedule_as(task t, bool if_absent);

  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace corvo::schedule
