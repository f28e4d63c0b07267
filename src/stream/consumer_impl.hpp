#pragma once
// Internals of stream::consumer shared by consumer.cpp (reading, handling, acks, life) and
// consumer_recovery.cpp (group creation, XAUTOCLAIM, dead letters, idle consumers).

#include <boost/asio/steady_timer.hpp>
#include <boost/unordered/unordered_flat_set.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/notifier.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/stream/consumer.hpp>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace corvo::stream {

namespace detail {

// Replies: an entry is [id, fields], fields nil when the entry was deleted while pending.
using reply_fields = std::optional<std::vector<std::string>>;
using reply_entries = std::vector<std::pair<std::string, reply_fields>>;
// XREADGROUP: nil on timeout, else a map stream → entries.
using read_reply = std::optional<std::vector<std::pair<std::string, reply_entries>>>;
// XAUTOCLAIM: next cursor, claimed entries, ids deleted from the PEL.
using autoclaim_reply = std::tuple<std::string, reply_entries, std::vector<std::string>>;
// XPENDING extended form: id, consumer, idle ms, deliveries.
using pending_reply =
    std::vector<std::tuple<std::string, std::string, std::int64_t, std::uint64_t>>;

bool is_nogroup(const redis::reply_error& e) noexcept;

// Ids of the entries taken by this consumer and not finished. A stream id is "<ms>-<seq>":
// held as its two numbers in an open-addressing set, so taking and finishing an entry
// allocates nothing (this is on the hot path, twice per entry).
class held_ids {
 public:
  bool contains(std::string_view id) const { return set_.contains(key_of(id)); }
  /// False if it was already held.
  bool insert(std::string_view id) { return set_.insert(key_of(id)).second; }
  void erase(std::string_view id) { set_.erase(key_of(id)); }
  std::size_t size() const noexcept { return set_.size(); }

 private:
  struct key {
    std::uint64_t ms = 0;
    std::uint64_t seq = 0;
    bool operator==(const key&) const = default;
  };
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept {
      return static_cast<std::size_t>(k.ms * 0x9E3779B97F4A7C15ULL ^ k.seq);
    }
  };
  // Ids from Redis always have the form; anything else is keyed by its text's hash.
  static key key_of(std::string_view id) noexcept;

  boost::unordered_flat_set<key, key_hash> set_;
};

}  // namespace detail

struct consumer::impl {
  struct stream_state {
    std::string key;
    std::string dead_letters;
    std::unique_ptr<redis::client> reader;   // dedicated connection
    std::vector<std::string> acks;           // ids finished, to acknowledge
    std::unique_ptr<notifier> acks_pending;  // wakes the acker
    detail::held_ids held;                   // ids taken here and not finished
    std::map<std::string, std::deque<entry>, std::less<>> key_queues;  // busy keys → waiting
    std::string claim_cursor = "0-0";
    bool group_ready = false;
  };

  impl(redis::client& r, consumer_options o);

  redis::client& redis;
  consumer_options options;
  std::string name;
  handler handle;
  start_observer observer;
  consumer_stats stats;
  std::vector<std::unique_ptr<stream_state>> streams;
  // Entries are run by a pool of long-lived worker coroutines (children of `workers`, at
  // most max_in_flight), not by a coroutine spawned per entry: a worker takes the next entry
  // from `ready` and, while more wait, gets one more worker going (an idle one woken, or a
  // new one), so handlers that suspend run in parallel and handlers that complete at once run
  // one after another in one worker without a trip through the scheduler per entry.
  struct ready_entry {
    stream_state* s;
    entry e;
  };
  std::optional<task_group> workers;
  std::deque<ready_entry> ready;         // taken, waiting for a worker
  std::unique_ptr<notifier> work_ready;  // wakes an idle worker
  std::size_t worker_count = 0;
  bool wake_pending = false;  // a worker was woken or started and has not looked at `ready` yet
  std::unique_ptr<notifier> slot_freed;  // a held entry finished
  std::size_t held_count = 0;
  bool running = false;
  bool abandoned = false;           // the consumer object was destroyed: stop, run no more
  task_group* loops_now = nullptr;  // run()'s readers and claimers while they run
  bool stopping = false;            // no new retries; sleeping ones given up
  bool finishing = false;           // ackers end once their queue is empty
  std::set<asio::steady_timer*> retry_timers;
  std::mt19937_64 random{std::random_device{}()};

  // consumer.cpp
  asio::awaitable<void> run(handler h);
  // The consumer object is being destroyed during run(): stops the run as a cancellation
  // would (the run keeps this object alive until it ends).
  void abandon();
  asio::awaitable<void> reader(stream_state& s);
  asio::awaitable<void> acker(stream_state& s);
  asio::awaitable<void> wait_for_free_slot();
  std::size_t free_slots() const noexcept;
  bool try_take(stream_state& s, entry& e);
  // Queues a held entry for the worker pool.
  void enqueue(stream_state& s, entry e);
  // Gets one more worker going if entries wait and none is on its way.
  void kick();
  asio::awaitable<void> worker();
  asio::awaitable<void> take(stream_state& s, entry e);
  asio::awaitable<void> run_chain(stream_state& s, std::string key, entry first);
  asio::awaitable<void> run_one(stream_state& s, entry e);
  // Runs the handler until the entry succeeds (true: acknowledge it), is dead-lettered, or
  // is left pending (false). `failure`: the first attempt already failed with it.
  asio::awaitable<bool> process(stream_state& s, entry& e, std::exception_ptr failure);
  // The entry is no longer held here; `acknowledge` queues its XACK (moving its id).
  void finish(stream_state& s, entry& e, bool acknowledge);
  void ack(stream_state& s, std::string id);
  asio::awaitable<bool> retry_sleep(std::chrono::milliseconds delay);
  std::chrono::milliseconds retry_delay(std::uint64_t deliveries);

  // consumer_recovery.cpp
  asio::awaitable<void> ensure_group(stream_state& s, bool after_nogroup);
  asio::awaitable<void> claimer(stream_state& s);
  asio::awaitable<void> claim_pass(stream_state& s);
  asio::awaitable<void> remove_idle_consumers(stream_state& s);
  asio::awaitable<void> fill_deliveries(stream_state& s, std::vector<entry>& entries,
                                        bool own_only);
  asio::awaitable<bool> reown(stream_state& s, entry& e, std::chrono::milliseconds idle);
  asio::awaitable<void> dead_letter(stream_state& s, const entry& e, const std::string& reason);
  std::vector<entry> to_entries(const stream_state& s, detail::reply_entries&& in);
};

}  // namespace corvo::stream
