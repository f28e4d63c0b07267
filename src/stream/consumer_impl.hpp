#pragma once
// Internals of stream::consumer shared by consumer.cpp (reading, handling, acks, life) and
// consumer_recovery.cpp (group creation, XAUTOCLAIM, dead letters, idle consumers).

#include <boost/asio/steady_timer.hpp>
#include <corvo/core/backoff.hpp>
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
#include <unordered_set>
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

}  // namespace detail

struct consumer::impl {
  struct stream_state {
    std::string key;
    std::string dead_letters;
    std::unique_ptr<redis::client> reader;             // dedicated connection
    std::vector<std::string> acks;                     // ids finished, to acknowledge
    std::unique_ptr<asio::steady_timer> acks_pending;  // notifier for the acker
    std::unordered_set<std::string> held;              // ids taken here and not finished
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
  std::optional<task_group> workers;
  std::unique_ptr<asio::steady_timer> slot_freed;  // notifier: a held entry finished
  std::size_t held_count = 0;
  bool running = false;
  bool stopping = false;   // no new retries; sleeping ones given up
  bool finishing = false;  // ackers end once their queue is empty
  std::set<asio::steady_timer*> retry_timers;
  std::mt19937_64 random{std::random_device{}()};

  // consumer.cpp
  asio::awaitable<void> run(handler h);
  asio::awaitable<void> reader(stream_state& s);
  asio::awaitable<void> acker(stream_state& s);
  asio::awaitable<void> wait_for_free_slot();
  std::size_t free_slots() const noexcept;
  bool try_take(stream_state& s, entry& e);
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

asio::awaitable<void> wait_notified(asio::steady_timer& t);

}  // namespace corvo::stream
