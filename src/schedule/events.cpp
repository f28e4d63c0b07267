// Task events: the kinds, the query filter, the reader's buffering and positions (the store
// part is in memory_store.cpp and redis_events.cpp).
#include <algorithm>
#include <array>
#include <boost/asio/this_coro.hpp>
#include <corvo/schedule/events.hpp>
#include <corvo/schedule/store.hpp>
#include <stdexcept>
#include <utility>

namespace corvo::schedule {
namespace {

constexpr std::array<std::pair<event_kind, std::string_view>, 6> kind_names{{
    {event_kind::scheduled, "scheduled"},
    {event_kind::started, "started"},
    {event_kind::succeeded, "succeeded"},
    {event_kind::failed, "failed"},
    {event_kind::dead, "dead"},
    {event_kind::cancelled, "cancelled"},
}};

// next() reads this many at a time.
constexpr std::size_t next_batch = 256;

}  // namespace

std::string_view to_string(event_kind kind) noexcept {
  for (const auto& [k, name] : kind_names) {
    if (k == kind) {
      return name;
    }
  }
  return "unknown";
}

std::optional<event_kind> parse_event_kind(std::string_view name) noexcept {
  for (const auto& [k, n] : kind_names) {
    if (n == name) {
      return k;
    }
  }
  return std::nullopt;
}

bool event_query::matches(const task_event& e) const {
  if (!task_id.empty() && e.task_id != task_id) {
    return false;
  }
  if (!type.empty() && e.type != type) {
    return false;
  }
  return kinds.empty() || std::find(kinds.begin(), kinds.end(), e.kind) != kinds.end();
}

event_reader::event_reader(event_query query, std::vector<std::string> start)
    : query_(std::move(query)), positions_(std::move(start)) {}

std::vector<std::string> event_reader::split_position(std::string_view position, unsigned shards) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  for (;;) {
    const auto end = position.find(',', begin);
    parts.emplace_back(position.substr(begin, end == std::string_view::npos ? end : end - begin));
    if (end == std::string_view::npos) {
      break;
    }
    begin = end + 1;
  }
  const bool empty_part =
      std::any_of(parts.begin(), parts.end(), [](const auto& p) { return p.empty(); });
  if (parts.size() != shards || empty_part) {
    throw std::invalid_argument("events: '" + std::string(position) +
                                "' is not a position of this namespace (" + std::to_string(shards) +
                                " shard positions joined by ',')");
  }
  return parts;
}

std::string event_reader::position() const {
  std::string out;
  for (const auto& p : positions_) {
    if (!out.empty()) {
      out += ',';
    }
    out += p;
  }
  return out;
}

std::vector<task_event> event_reader::take(std::size_t max) {
  std::vector<task_event> out;
  while (!buffered_.empty() && out.size() < max) {
    auto e = std::move(buffered_.front());
    buffered_.pop_front();
    if (e.shard < positions_.size()) {
      positions_[e.shard] = e.position;
    }
    if (query_.matches(e)) {
      out.push_back(std::move(e));
    }
  }
  return out;
}

asio::awaitable<std::vector<task_event>> event_reader::read(std::size_t max,
                                                            std::chrono::milliseconds wait) {
  if (max == 0) {
    throw std::invalid_argument("event_reader::read: max must be at least 1");
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    auto out = take(max);
    if (!out.empty()) {
      co_return out;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto fetched = co_await fetch(std::max(max, next_batch),
                                  std::max(left, std::chrono::milliseconds::zero()));
    if (fetched.empty()) {
      if (left <= std::chrono::milliseconds::zero() ||
          std::chrono::steady_clock::now() >= deadline) {
        co_return out;
      }
      continue;
    }
    for (auto& e : fetched) {
      buffered_.push_back(std::move(e));
    }
  }
}

asio::awaitable<task_event> event_reader::next() {
  for (;;) {
    auto got = co_await read(1, std::chrono::hours(24));
    if (!got.empty()) {
      co_return std::move(got.front());
    }
  }
}

asio::awaitable<std::unique_ptr<event_reader>> store::events(event_query) {
  throw std::logic_error("this store has no task events");
  co_return nullptr;
}

}  // namespace corvo::schedule
