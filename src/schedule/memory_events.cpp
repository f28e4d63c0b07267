#include "memory_events.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <stdexcept>

namespace corvo::schedule::detail {
namespace {

std::string this_process() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) {
    host[0] = '\0';
  }
  return std::string(host) + ":" + std::to_string(::getpid());
}

}  // namespace

struct memory_event_log::state {
  explicit state(asio::any_io_executor ex, unsigned shards)
      : executor(std::move(ex)), buffers(shards), next_seq(shards, 1) {}

  asio::any_io_executor executor;
  std::vector<std::deque<task_event>> buffers;  // per shard, oldest first
  std::vector<std::uint64_t> next_seq;          // per shard: the next event's number
  std::set<asio::steady_timer*> waiting;        // readers waiting for an event

  void wake() {
    for (auto* t : waiting) {
      t->cancel();
    }
  }
};

class memory_event_log::reader_impl final : public event_reader {
 public:
  reader_impl(std::shared_ptr<state> s, event_query query, std::vector<std::string> start,
              std::vector<std::uint64_t> after)
      : event_reader(std::move(query), std::move(start)),
        s_(std::move(s)),
        after_(std::move(after)) {}

 protected:
  asio::awaitable<std::vector<task_event>> fetch(std::size_t max,
                                                 std::chrono::milliseconds wait) override {
    auto out = collect(max);
    if (!out.empty() || wait <= std::chrono::milliseconds::zero()) {
      co_return out;
    }
    asio::steady_timer timer(s_->executor, wait);
    s_->waiting.insert(&timer);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    s_->waiting.erase(&timer);
    const auto cancellation = co_await asio::this_coro::cancellation_state;
    if (cancellation.cancelled() != asio::cancellation_type::none) {
      throw boost::system::system_error(asio::error::operation_aborted);
    }
    co_return collect(max);
  }

 private:
  // Up to `max` events after the cursors: the shards' events merged by time (each shard's
  // in order; ties to the lower shard). A cursor behind the buffer goes to its oldest event.
  std::vector<task_event> collect(std::size_t max) {
    const auto shards = s_->buffers.size();
    std::vector<std::size_t> at(shards), end(shards);
    for (std::size_t shard = 0; shard < shards; ++shard) {
      const auto& buffer = s_->buffers[shard];
      end[shard] = buffer.size();
      // Sequence numbers are consecutive within a buffer: index = seq - first seq.
      const auto first = buffer.empty() ? 0 : std::stoull(buffer.front().position);
      at[shard] = buffer.empty()
                      ? 0
                      : std::min<std::uint64_t>(
                            std::max<std::uint64_t>(after_[shard] + 1, first) - first, end[shard]);
    }
    std::vector<task_event> out;
    while (out.size() < max) {
      std::size_t best = shards;
      for (std::size_t shard = 0; shard < shards; ++shard) {
        if (at[shard] < end[shard] &&
            (best == shards || s_->buffers[shard][at[shard]].at < s_->buffers[best][at[best]].at)) {
          best = shard;
        }
      }
      if (best == shards) {
        break;
      }
      out.push_back(s_->buffers[best][at[best]++]);
      after_[best] = std::stoull(out.back().position);
    }
    return out;
  }

  std::shared_ptr<state> s_;
  std::vector<std::uint64_t> after_;  // per shard: the last sequence number read
};

memory_event_log::memory_event_log(asio::any_io_executor executor, unsigned shards)
    : state_(std::make_shared<state>(std::move(executor), shards)) {
  options_.source = this_process();
}

void memory_event_log::configure(events_options options) {
  if (options.max_len == 0) {
    throw std::invalid_argument("memory_store: events max_len must be at least 1");
  }
  if (options.source.empty()) {
    options.source = this_process();
  }
  options_ = std::move(options);
}

void memory_event_log::record(task_event e) {
  if (!options_.enabled) {
    return;
  }
  auto& buffer = state_->buffers.at(e.shard);
  e.position = std::to_string(state_->next_seq[e.shard]++);
  e.source = options_.source;
  buffer.push_back(std::move(e));
  while (buffer.size() > options_.max_len) {
    buffer.pop_front();
  }
  state_->wake();
}

std::unique_ptr<event_reader> memory_event_log::reader(event_query query) {
  const auto shards = static_cast<unsigned>(state_->buffers.size());
  std::vector<std::uint64_t> after(shards, 0);
  if (query.from == events_from_now) {
    for (unsigned s = 0; s < shards; ++s) {
      after[s] = state_->next_seq[s] - 1;
    }
  } else if (query.from != events_from_start) {
    const auto parts = event_reader::split_position(query.from, shards);
    for (unsigned s = 0; s < shards; ++s) {
      std::size_t used = 0;
      try {
        after[s] = std::stoull(parts[s], &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != parts[s].size()) {
        throw std::invalid_argument("events: '" + query.from +
                                    "' is not a position of this memory store");
      }
    }
  }
  std::vector<std::string> start;
  for (const auto a : after) {
    start.push_back(std::to_string(a));
  }
  return std::make_unique<reader_impl>(state_, std::move(query), std::move(start),
                                       std::move(after));
}

}  // namespace corvo::schedule::detail
