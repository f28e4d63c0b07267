// stream::consumer: group creation and re-creation, pending recovery (XAUTOCLAIM), retries'
// re-ownership (XCLAIM), dead letters and the removal of idle consumers.

#include <unistd.h>

#include <boost/asio/this_coro.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/trace.hpp>
#include <cstring>
#include <map>

#include "consumer_impl.hpp"
#include "consumer_scripts.hpp"

namespace corvo::stream {

namespace {
constexpr std::string_view channel = "stream";
}

namespace detail {

bool is_nogroup(const redis::reply_error& e) noexcept {
  return e.code == redis::error::server_error && std::string_view(e.message).starts_with("NOGROUP");
}

}  // namespace detail

std::string default_consumer_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
    std::strcpy(host, "host");
  }
  return std::string(host) + "-" + std::to_string(::getpid());
}

asio::awaitable<void> consumer::impl::ensure_group(stream_state& s, bool after_nogroup) {
  if (after_nogroup) {
    CORVO_LOG(warning, channel) << "group " << options.group << " of stream " << s.key
                                << " is gone (NOGROUP: Redis lost its data or the stream was "
                                   "deleted); re-creating it from "
                                << options.start_id;
  }
  backoff errors(options.redis_retry);
  for (;;) {
    redis::request req;
    req.push("XGROUP", "CREATE", s.key, options.group, options.start_id, "MKSTREAM");
    redis::response<redis::ignore_t> resp;
    std::string problem;
    try {
      co_await redis.exec(req, resp);
      auto& r = std::get<0>(resp);
      if (r.has_value()) {
        ++stats.groups_created;
        if (after_nogroup) {
          ++stats.groups_recreated;
        }
        CORVO_LOG(info, channel) << "created group " << options.group << " on " << s.key << " from "
                                 << options.start_id;
        s.group_ready = true;
        co_return;
      }
      if (std::string_view(r.error().message).starts_with("BUSYGROUP")) {
        s.group_ready = true;
        co_return;
      }
      problem = r.error().message;
    } catch (...) {
      const auto e = std::current_exception();
      if (is_operation_aborted(e)) {
        throw;
      }
      problem = describe(e);
    }
    ++stats.redis_errors;
    CORVO_LOG(warning, channel) << "XGROUP CREATE " << s.key << " " << options.group
                                << " failed: " << problem << "; retrying";
    co_await sleep_for(errors.next());
  }
}

asio::awaitable<void> consumer::impl::fill_deliveries(stream_state& s, std::vector<entry>& entries,
                                                      bool own_only) {
  if (entries.empty()) {
    co_return;
  }
  // The ids are ascending: one XPENDING over their range gives every delivery count.
  std::size_t wanted = 0;
  for (const auto& e : entries) {
    wanted += e.deliveries != 0 ? 1 : 0;
  }
  if (wanted == 0) {
    co_return;
  }
  redis::request req;
  if (own_only) {
    req.push("XPENDING", s.key, options.group, entries.front().id, entries.back().id,
             entries.size(), name);
  } else {
    // Other consumers' entries may lie in the range: ask for enough.
    req.push("XPENDING", s.key, options.group, entries.front().id, entries.back().id,
             std::max<std::size_t>(entries.size() * 4, 1000));
  }
  redis::response<detail::pending_reply> resp;
  try {
    co_await redis.exec(req, resp);
  } catch (...) {
    if (is_operation_aborted(std::current_exception())) {
      throw;
    }
    // Unknown counts stay 1: the entry runs, and its count is read again on a retry.
    ++stats.redis_errors;
    co_return;
  }
  auto& r = std::get<0>(resp);
  if (!r.has_value()) {
    ++stats.redis_errors;
    co_return;
  }
  std::map<std::string_view, std::uint64_t> counts;
  for (const auto& [id, owner, idle, deliveries] : *r) {
    if (owner == name) {
      counts.emplace(id, deliveries);
    }
  }
  for (auto& e : entries) {
    if (e.deliveries == 0) {
      continue;
    }
    if (const auto it = counts.find(e.id); it != counts.end()) {
      e.deliveries = std::max<std::uint64_t>(it->second, 1);
    }
  }
}

asio::awaitable<void> consumer::impl::claimer(stream_state& s) {
  auto last_cleanup = std::chrono::steady_clock::now();
  for (;;) {
    co_await sleep_for(options.claim_interval);
    if (!s.group_ready) {
      continue;
    }
    std::exception_ptr failed;
    try {
      co_await claim_pass(s);
      if (options.delete_idle_consumers_after.count() > 0 &&
          std::chrono::steady_clock::now() - last_cleanup >= options.claim_interval) {
        last_cleanup = std::chrono::steady_clock::now();
        co_await remove_idle_consumers(s);
      }
    } catch (...) {
      failed = std::current_exception();
    }
    if (failed) {
      if (is_operation_aborted(failed)) {
        std::rethrow_exception(failed);
      }
      ++stats.redis_errors;
      CORVO_LOG(warning, channel) << "pending recovery on " << s.key
                                  << " failed: " << describe(failed) << "; next scan later";
    }
  }
}

asio::awaitable<void> consumer::impl::claim_pass(stream_state& s) {
  // Carries the cursor from call to call (and from pass to pass) until it comes back as
  // 0-0: each XAUTOCLAIM scans at most 10·COUNT pending entries, so restarting at 0-0 every
  // time would never reach the tail of a long pending list.
  do {
    co_await wait_for_free_slot();
    const std::size_t count = std::min(options.claim_batch, free_slots());
    redis::request req;
    req.push("XAUTOCLAIM", s.key, options.group, name, options.min_idle.count(), s.claim_cursor,
             "COUNT", count);
    redis::response<detail::autoclaim_reply> resp;
    co_await redis.exec(req, resp);
    auto& r = std::get<0>(resp);
    if (!r.has_value()) {
      if (detail::is_nogroup(r.error())) {
        s.claim_cursor = "0-0";
        co_return;  // the reader re-creates the group
      }
      throw boost::system::system_error(r.error().code, r.error().message);
    }
    auto& [cursor, claimed, deleted] = *r;
    s.claim_cursor = cursor;
    if (!deleted.empty()) {
      stats.deleted_cleared += deleted.size();
      CORVO_LOG(info, channel) << deleted.size() << " pending entr(ies) of " << s.key
                               << " were deleted or trimmed; cleared from group " << options.group;
    }
    auto entries = to_entries(s, std::move(claimed));
    if (entries.empty()) {
      continue;
    }
    stats.reclaimed += entries.size();
    CORVO_LOG(info, channel) << "reclaimed " << entries.size() << " idle entr(ies) of " << s.key;
    co_await fill_deliveries(s, entries, true);
    for (auto& e : entries) {
      co_await take(s, std::move(e));
    }
  } while (s.claim_cursor != "0-0");
}

asio::awaitable<bool> consumer::impl::reown(stream_state& s, entry& e,
                                            std::chrono::milliseconds idle) {
  // Only when nobody touched it while we waited (idle ≥ our wait), so a retry never takes
  // an entry another consumer reclaimed meanwhile. XCLAIM counts the delivery.
  const auto min_idle = std::max<std::int64_t>(idle.count() - 5, 0);
  redis::request req;
  req.push("XCLAIM", s.key, options.group, name, min_idle, e.id);
  req.push("XPENDING", s.key, options.group, e.id, e.id, 1);
  redis::response<detail::reply_entries, detail::pending_reply> resp;
  backoff errors(options.redis_retry);
  for (;;) {
    bool lost = false;
    try {
      co_await redis.exec(req, resp);
    } catch (...) {
      if (is_operation_aborted(std::current_exception())) {
        throw;
      }
      lost = true;
    }
    auto& claimed = std::get<0>(resp);
    auto& pending = std::get<1>(resp);
    if (!lost && claimed.has_value() && pending.has_value()) {
      if (claimed->empty() || !claimed->front().second || pending->empty() ||
          std::get<1>(pending->front()) != name) {
        co_return false;
      }
      e.fields = std::move(*claimed->front().second);
      e.deliveries = std::get<3>(pending->front());
      co_return true;
    }
    if (!lost && ((!claimed.has_value() && detail::is_nogroup(claimed.error())) ||
                  (!pending.has_value() && detail::is_nogroup(pending.error())))) {
      co_return false;
    }
    ++stats.redis_errors;
    if (stopping) {
      co_return false;
    }
    co_await sleep_for(errors.next());
  }
}

asio::awaitable<void> consumer::impl::dead_letter(stream_state& s, const entry& e,
                                                  const std::string& reason) {
  std::vector<std::string> keys{s.key, s.dead_letters};
  std::vector<std::string> args;
  args.reserve(5 + e.fields.size());
  args.push_back(options.group);
  args.push_back(e.id);
  args.push_back(name);
  args.push_back(std::to_string(e.deliveries));
  args.push_back(reason);
  args.insert(args.end(), e.fields.begin(), e.fields.end());
  redis::response<std::int64_t> resp;
  std::string problem;
  try {
    co_await detail::dead_letter_script().exec(redis, std::move(keys), std::move(args), resp);
    auto& r = std::get<0>(resp);
    if (r.has_value()) {
      if (*r == 1) {
        ++stats.dead_lettered;
        CORVO_LOG_TRACED(warning, channel, e.traceparent())
            << "entry " << e.id << " of " << s.key << " dead-lettered to " << s.dead_letters
            << ": " << reason;
      }
      co_return;
    }
    problem = r.error().message;
  } catch (...) {
    if (is_operation_aborted(std::current_exception())) {
      throw;
    }
    problem = describe(std::current_exception());
  }
  // Left pending: XAUTOCLAIM brings it back after min_idle, and it is dead-lettered then.
  ++stats.redis_errors;
  CORVO_LOG(error, channel) << "could not dead-letter entry " << e.id << " of " << s.key << ": "
                            << problem << "; it stays pending";
}

asio::awaitable<void> consumer::impl::remove_idle_consumers(stream_state& s) {
  std::vector<std::string> keys{s.key};
  std::vector<std::string> args{options.group,
                                std::to_string(options.delete_idle_consumers_after.count()), name};
  redis::response<std::vector<std::string>> resp;
  co_await detail::remove_idle_consumers_script().exec(redis, std::move(keys), std::move(args),
                                                       resp);
  auto& r = std::get<0>(resp);
  if (!r.has_value()) {
    if (!detail::is_nogroup(r.error())) {
      ++stats.redis_errors;
      CORVO_LOG(warning, channel) << "removing idle consumers of " << s.key << ": " << r.error();
    }
    co_return;
  }
  for (const auto& gone : *r) {
    ++stats.consumers_removed;
    CORVO_LOG(info, channel) << "removed idle consumer " << gone << " (no pending entries) from "
                             << options.group << " on " << s.key;
  }
}

}  // namespace corvo::stream
