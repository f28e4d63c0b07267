#include "traffic.hpp"

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/pubsub/publish.hpp>
#include <sstream>

namespace live_fanout {

std::size_t publish_log::heard_count() const {
  std::size_t n = 0;
  for (const auto& [room, seqs] : heard) {
    n += seqs.size();
  }
  return n;
}

std::size_t publish_log::unheard_count() const {
  std::size_t n = 0;
  for (const auto& [room, seqs] : unheard) {
    n += seqs.size();
  }
  return n;
}

std::string room_channel(const std::string& room) {
  return "room." + room;
}

namespace {

asio::awaitable<std::int64_t> publish_one(corvo::redis::client& redis, const std::string& room,
                                          std::uint64_t seq, publish_command command,
                                          std::size_t padding) {
  std::string channel = room_channel(room);
  std::string payload = make_payload(room, seq, padding);
  if (command == publish_command::publish) {
    co_return co_await corvo::pubsub::publish(redis, std::move(channel), std::move(payload));
  }
  co_return co_await corvo::pubsub::spublish(redis, std::move(channel), std::move(payload));
}

void record(publish_log& log, const std::string& room, std::uint64_t seq, std::int64_t receivers) {
  (receivers > 0 ? log.heard : log.unheard)[room].push_back(seq);
}

asio::awaitable<void> publish_room(corvo::redis::client& redis, std::string room, std::size_t count,
                                   publish_command command, std::size_t padding, publish_log& log) {
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t seq = log.next_seq[room]++;
    const auto receivers = co_await publish_one(redis, room, seq, command, padding);
    record(log, room, seq, receivers);
  }
}

asio::awaitable<void> publish_room_until_heard(corvo::redis::client& redis, std::string room,
                                               publish_command command, publish_log& log,
                                               std::chrono::milliseconds pause,
                                               std::chrono::steady_clock::time_point deadline,
                                               bool& heard) {
  while (std::chrono::steady_clock::now() < deadline) {
    const std::uint64_t seq = log.next_seq[room];
    std::int64_t receivers = 0;
    bool published = true;
    try {
      receivers = co_await publish_one(redis, room, seq, command, 0);
    } catch (const boost::system::system_error&) {
      published = false;  // Redis is not reachable yet: nothing was published
    }
    if (!published) {
      co_await corvo::sleep_for(pause);
      continue;
    }
    ++log.next_seq[room];
    record(log, room, seq, receivers);
    if (receivers > 0) {
      heard = true;
      co_return;
    }
    co_await corvo::sleep_for(pause);
  }
}

}  // namespace

asio::awaitable<void> publish_messages(corvo::redis::client& redis, std::vector<std::string> rooms,
                                       std::size_t count, publish_command command,
                                       std::size_t padding, publish_log& log) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group publishers(ex);
  for (const auto& room : rooms) {
    auto one = publish_room(redis, room, count, command, padding, log);
    co_await publishers.spawn(std::move(one));
  }
  co_await publishers.join();
}

asio::awaitable<bool> publish_paced(corvo::redis::client& redis, std::string room,
                                    std::size_t count, publish_command command, std::size_t padding,
                                    const room_client& pacer, publish_log& log,
                                    std::chrono::milliseconds limit) {
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t seq = log.next_seq[room]++;
    const auto receivers = co_await publish_one(redis, room, seq, command, padding);
    record(log, room, seq, receivers);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (pacer.seqs().empty() || pacer.seqs().back() != seq) {
      if (std::chrono::steady_clock::now() > deadline) {
        co_return false;
      }
      co_await corvo::sleep_for(std::chrono::microseconds(200));
    }
  }
  co_return true;
}

asio::awaitable<bool> publish_until_heard(corvo::redis::client& redis,
                                          std::vector<std::string> rooms, publish_command command,
                                          publish_log& log, std::chrono::milliseconds pause,
                                          std::chrono::milliseconds limit) {
  auto ex = co_await asio::this_coro::executor;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  corvo::task_group publishers(ex);
  auto results = std::make_unique<bool[]>(rooms.size());
  for (std::size_t i = 0; i < rooms.size(); ++i) {
    results[i] = false;
    auto one = publish_room_until_heard(redis, rooms[i], command, log, pause, deadline, results[i]);
    co_await publishers.spawn(std::move(one));
  }
  co_await publishers.join();
  for (std::size_t i = 0; i < rooms.size(); ++i) {
    if (!results[i]) {
      co_return false;
    }
  }
  co_return true;
}

bool all_delivered(const client_list& clients, const publish_log& log) {
  for (const auto& c : clients) {
    const auto it = log.heard.find(c->room());
    const std::size_t expected = it == log.heard.end() ? 0 : it->second.size();
    if (c->seqs().size() < expected) {
      return false;
    }
  }
  return true;
}

std::vector<std::string> check_delivery(const client_list& clients, const publish_log& log) {
  std::vector<std::string> failures;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const auto& c = *clients[i];
    const auto it = log.heard.find(c.room());
    const std::vector<std::uint64_t> expected =
        it == log.heard.end() ? std::vector<std::uint64_t>{} : it->second;
    std::ostringstream who;
    who << "client " << i << " of room " << c.room() << ": ";
    if (c.seqs() != expected) {
      const auto mismatch =
          std::mismatch(c.seqs().begin(), c.seqs().end(), expected.begin(), expected.end());
      who << "received " << c.seqs().size() << " messages, expected " << expected.size()
          << "; first difference at position " << (mismatch.first - c.seqs().begin());
      failures.push_back(who.str());
    } else if (c.foreign() != 0) {
      who << c.foreign() << " frames of other rooms or not payloads";
      failures.push_back(who.str());
    }
  }
  return failures;
}

double latency_percentile_ms(const client_list& clients, double p) {
  std::vector<std::chrono::nanoseconds> all;
  for (const auto& c : clients) {
    all.insert(all.end(), c->latencies().begin(), c->latencies().end());
  }
  if (all.empty()) {
    return 0;
  }
  const auto k = static_cast<std::size_t>(p * static_cast<double>(all.size() - 1));
  std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end());
  return std::chrono::duration<double, std::milli>(all[k]).count();
}

}  // namespace live_fanout
