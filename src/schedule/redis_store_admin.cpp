// The Redis store's inspection and administration: browse, stats, dead letters, in flight,
// pause and resume, restore, replay, purge and limit states (redis_store.hpp). The task
// operations are in redis_store.cpp; the state both share in redis_store_impl.hpp.

#include "redis_store_impl.hpp"

namespace corvo::schedule {

namespace {

// Reads the records of `members` (all from one shard) into tasks with `state`.
asio::awaitable<std::vector<task>> load_tasks(redis::client& conn, const std::string& tasks_key,
                                              std::vector<std::pair<std::string, double>> members,
                                              task_state state) {
  std::vector<task> out;
  if (members.empty()) {
    co_return out;
  }
  std::vector<std::string> ids;
  for (const auto& m : members) {
    ids.push_back(m.first);
  }
  redis::request req;
  req.push("HMGET", tasks_key, ids);
  redis::response<std::vector<std::optional<std::string>>> resp;
  co_await conn.exec(req, resp);
  const auto& records = value_or_throw(std::get<0>(resp), "load");
  for (std::size_t i = 0; i < members.size() && i < records.size(); ++i) {
    if (!records[i]) {
      continue;  // removed between the two reads
    }
    task t;
    t.id = members[i].first;
    try {
      detail::decode_record(*records[i], t);
    } catch (const std::exception& e) {
      t = task{};  // listed with the reason rather than failing the whole page
      t.id = members[i].first;
      t.last_error = std::string("undecodable task record: ") + e.what();
    }
    t.state = state;
    if (state == task_state::scheduled) {
      t.due = from_micros(members[i].second);
      default_occurrence(t);
    }
    out.push_back(std::move(t));
  }
  co_return out;
}

// Entries read (and records loaded) per round trip when listing.
constexpr std::size_t page_batch = 256;

struct listed {
  std::string id;
  double score;
  unsigned shard;
  std::string token;  ///< a leased set's entry: its lease token (detail::apply_lease)
  std::optional<std::string> record;  ///< read with the entry (the compact tier's)
};

// An entry of a source of merged_page: member, score and, from the compact tier, the record.
struct entry {
  std::string member;
  double score;
  std::optional<std::string> record;
};

// Built outside the coroutine (GCC 12 mishandles braced aggregates holding strings in one).
entry make_entry(std::string member, double score, std::optional<std::string> record) {
  entry e;
  e.member = std::move(member);
  e.score = score;
  e.record = std::move(record);
  return e;
}

// A task of the compact tier listed with its record (state scheduled).
task compact_task(const listed& c) {
  task t;
  t.id = c.id;
  try {
    detail::decode_record(*c.record, t);
  } catch (const std::exception& e) {
    t = task{};
    t.id = c.id;
    t.last_error = std::string("undecodable task record: ") + e.what();
  }
  t.state = task_state::scheduled;
  t.due = from_micros(c.score);
  default_occurrence(t);
  return t;
}

// Loads the records of `chosen` (one HMGET per shard, at most page_batch ids each) and
// appends them to `out` in the order of `chosen`.
asio::awaitable<void> load_in_order(redis::client& conn,
                                    const std::vector<std::vector<std::string>>& keys,
                                    const std::vector<listed>& chosen, task_state state,
                                    std::vector<task>& out) {
  std::map<std::pair<unsigned, std::string>, task> loaded;
  for (unsigned s = 0; s < keys.size(); ++s) {
    std::vector<std::pair<std::string, double>> members;
    for (const auto& c : chosen) {
      if (c.shard == s && !c.record) {
        members.emplace_back(c.id, c.score);
      }
    }
    auto tasks = co_await load_tasks(conn, keys[s][1], std::move(members), state);
    for (auto& t : tasks) {
      auto key = std::make_pair(s, t.id);
      loaded.emplace(std::move(key), std::move(t));
    }
  }
  for (const auto& c : chosen) {
    if (c.record) {
      out.push_back(compact_task(c));
      continue;
    }
    const auto it = loaded.find(std::make_pair(c.shard, c.id));
    if (it != loaded.end()) {
      detail::apply_lease(c.token, it->second);
      out.push_back(std::move(it->second));
    }
  }
}

// Entries offset .. offset+limit-1 of the sorted sets `keys[s][set]` of every shard merged
// (ascending by score, or descending with `reverse`; ties by id the same way), read
// page_batch entries per shard per round trip: a k-way merge that never asks for a whole set.
// The members of a source whose `leased[s]` is true are '<id> <token>' (a leased set). A
// source whose `compact[s]` is true is a shard's compact tier (its keys: the shard's), read by
// `compact_page` (ascending only) with the records.
asio::awaitable<std::vector<task>> merged_page(redis::client& conn,
                                               const std::vector<std::vector<std::string>>& keys,
                                               std::size_t set, bool reverse, std::size_t offset,
                                               std::size_t limit, task_state state,
                                               const std::vector<bool>& leased = {},
                                               const std::vector<bool>& compact = {},
                                               const redis::script* compact_page = nullptr) {
  std::vector<task> out;
  const auto shards = static_cast<unsigned>(keys.size());
  std::vector<std::deque<entry>> buffered(shards);
  std::vector<long long> next(shards, 0);
  std::vector<bool> exhausted(shards, false);
  std::vector<std::pair<std::string, std::string>> after(shards);  // compact: (due, id) read
  std::vector<listed> chosen;
  std::size_t skipped = 0;
  const auto before = [reverse](const entry& a, const entry& b) {
    if (a.score != b.score) {
      return reverse ? a.score > b.score : a.score < b.score;
    }
    return reverse ? a.member > b.member : a.member < b.member;
  };
  while (out.size() + chosen.size() < limit) {
    for (unsigned s = 0; s < shards; ++s) {
      if (!buffered[s].empty() || exhausted[s]) {
        continue;
      }
      if (s < compact.size() && compact[s]) {
        std::vector<std::string> args{after[s].first, after[s].second, std::to_string(page_batch)};
        redis::response<std::vector<std::string>> resp;
        co_await compact_page->exec(conn, keys[s], std::move(args), resp);
        auto got = value_or_throw(std::get<0>(resp), "browse");
        if (got.size() % 3 != 0) {
          throw std::runtime_error("redis_store browse: malformed compact tier page");
        }
        exhausted[s] = got.size() / 3 < page_batch;
        for (std::size_t i = 0; i < got.size(); i += 3) {
          after[s] = std::make_pair(got[i + 1], got[i]);
          buffered[s].push_back(make_entry(
              std::move(got[i]), std::strtod(got[i + 1].c_str(), nullptr), std::move(got[i + 2])));
        }
        continue;
      }
      redis::request req;
      const long long last = next[s] + static_cast<long long>(page_batch) - 1;
      if (reverse) {
        req.push("ZRANGE", keys[s][set], next[s], last, "REV", "WITHSCORES");
      } else {
        req.push("ZRANGE", keys[s][set], next[s], last, "WITHSCORES");
      }
      redis::generic_response nodes;
      co_await conn.exec(req, nodes);
      auto got = scored_members(nodes);
      next[s] += static_cast<long long>(page_batch);
      exhausted[s] = got.size() < page_batch;
      for (auto& g : got) {
        buffered[s].push_back(make_entry(std::move(g.first), g.second, std::nullopt));
      }
    }
    unsigned best = shards;
    for (unsigned s = 0; s < shards; ++s) {
      if (!buffered[s].empty() &&
          (best == shards || before(buffered[s].front(), buffered[best].front()))) {
        best = s;
      }
    }
    if (best == shards) {
      break;
    }
    auto next_entry = std::move(buffered[best].front());
    buffered[best].pop_front();
    if (skipped < offset) {
      ++skipped;
      continue;
    }
    listed pick{
        std::move(next_entry.member), next_entry.score, best, {}, std::move(next_entry.record)};
    if (best < leased.size() && leased[best]) {  // '<id> <token>'
      const auto space = std::min(pick.id.size(), pick.id.rfind(' '));
      pick.token = pick.id.substr(std::min(pick.id.size(), space + 1));
      pick.id.erase(space);
    }
    chosen.push_back(std::move(pick));
    if (chosen.size() == page_batch) {
      co_await load_in_order(conn, keys, chosen, state, out);
      chosen.clear();
    }
  }
  co_await load_in_order(conn, keys, chosen, state, out);
  co_return out;
}

}  // namespace

asio::awaitable<std::vector<task>> redis_store::browse(std::size_t offset, std::size_t limit) {
  co_await impl_->open();
  // Each shard's due sets (one per priority), its parked set (due tasks of a paused type)
  // and its held set (due tasks waiting for a permit) are sources of the merge, all reading
  // records from the shard's tasks hash.
  // The shard's compact tier is one more (compact_page merges its buckets).
  std::vector<std::vector<std::string>> sources;
  std::vector<bool> compact;
  for (const auto& k : impl_->keys) {
    for (const std::size_t set :
         {std::size_t{0}, std::size_t{7}, std::size_t{9}, std::size_t{10}, std::size_t{11}}) {
      sources.push_back(k);
      sources.back()[0] = k[set];
      compact.push_back(false);
    }
    sources.push_back(k);
    compact.push_back(true);
  }
  co_return co_await merged_page(impl_->conn, sources, 0, false, offset, limit,
                                 task_state::scheduled, {}, compact, &impl_->compact_page_script);
}

asio::awaitable<std::size_t> redis_store::compact_waiting() {
  co_await impl_->open();
  constexpr std::size_t step = 1000;
  std::size_t moved = 0;
  for (unsigned s = 0; s < shards(); ++s) {
    for (;;) {
      std::vector<std::string> args{std::to_string(step)};
      const auto reply = co_await impl_->run_script<std::vector<long long>>(
          impl_->compact_move_script, s, std::move(args), "compact_waiting");
      if (reply.size() != 2) {
        throw std::runtime_error("redis_store compact_waiting: malformed reply");
      }
      moved += static_cast<std::size_t>(reply[0]);
      if (reply[1] < static_cast<long long>(step)) {
        break;
      }
    }
  }
  co_return moved;
}

asio::awaitable<store_stats> redis_store::stats() {
  co_await impl_->open();
  store_stats total;
  const auto now_text = micros_text(now());
  for (unsigned s = 0; s < shards(); ++s) {
    const auto& k = impl_->keys[s];
    redis::request req;
    req.push("ZCARD", k[0]);
    req.push("ZCOUNT", k[0], "-inf", now_text);
    req.push("ZCARD", k[2]);  // leases taken by older versions
    req.push("ZCARD", k[4]);
    req.push("ZCARD", k[7]);  // parked: due tasks of a paused type
    req.push("ZCARD", k[9]);  // due:high
    req.push("ZCOUNT", k[9], "-inf", now_text);
    req.push("ZCARD", k[10]);  // due:low
    req.push("ZCOUNT", k[10], "-inf", now_text);
    req.push("ZCARD", k[11]);  // held back by a limit (due)
    req.push("ZCARD", impl_->leased_keys[s]);
    redis::response<long long, long long, long long, long long, long long, long long, long long,
                    long long, long long, long long, long long>
        resp;
    co_await impl_->conn.exec(req, resp);
    total.scheduled += static_cast<std::uint64_t>(value_or_throw(std::get<0>(resp), "stats"));
    total.due_now += static_cast<std::uint64_t>(value_or_throw(std::get<1>(resp), "stats"));
    total.in_flight += static_cast<std::uint64_t>(value_or_throw(std::get<2>(resp), "stats") +
                                                  value_or_throw(std::get<10>(resp), "stats"));
    total.dead += static_cast<std::uint64_t>(value_or_throw(std::get<3>(resp), "stats"));
    const auto parked = static_cast<std::uint64_t>(value_or_throw(std::get<4>(resp), "stats"));
    total.scheduled += parked;
    total.due_now += parked;
    total.scheduled += static_cast<std::uint64_t>(value_or_throw(std::get<5>(resp), "stats") +
                                                  value_or_throw(std::get<7>(resp), "stats"));
    total.due_now += static_cast<std::uint64_t>(value_or_throw(std::get<6>(resp), "stats") +
                                                value_or_throw(std::get<8>(resp), "stats"));
    const auto held = static_cast<std::uint64_t>(value_or_throw(std::get<9>(resp), "stats"));
    total.scheduled += held;
    total.due_now += held;
    total.held += held;
    std::vector<std::string> args{now_text};
    const auto compact = co_await impl_->run_script<std::vector<long long>>(
        impl_->compact_stats_script, s, std::move(args), "stats");
    if (compact.size() != 2) {
      throw std::runtime_error("redis_store stats: malformed compact tier counts");
    }
    total.scheduled += static_cast<std::uint64_t>(compact[0]);
    total.due_now += static_cast<std::uint64_t>(compact[1]);
  }
  co_return total;
}

namespace {

std::string pause_member(const std::string& type) {
  if (type == "*" || type.find('\n') != std::string::npos) {
    throw std::invalid_argument("pause: '" + type + "' is not a task type");
  }
  return type.empty() ? "*" : type;
}

}  // namespace

asio::awaitable<void> redis_store::pause(std::string type) {
  const auto member = pause_member(type);
  co_await impl_->open();
  for (unsigned s = 0; s < shards(); ++s) {
    std::vector<std::string> args{member};
    co_await impl_->run_script<long long>(impl_->pause_script, s, std::move(args), "pause");
  }
}

asio::awaitable<void> redis_store::resume(std::string type) {
  const auto member = pause_member(type);
  co_await impl_->open();
  for (unsigned s = 0; s < shards(); ++s) {
    std::vector<std::string> args{member};
    co_await impl_->run_script<long long>(impl_->resume_script, s, std::move(args), "resume");
  }
}

asio::awaitable<pause_state> redis_store::paused() {
  co_await impl_->open();
  redis::request req;
  req.push("SMEMBERS", impl_->keys[0][8]);
  redis::response<std::vector<std::string>> resp;
  co_await impl_->conn.exec(req, resp);
  auto members = value_or_throw(std::get<0>(resp), "paused");
  std::sort(members.begin(), members.end());
  pause_state out;
  for (auto& m : members) {
    if (m == "*") {
      out.all = true;
    } else {
      out.types.push_back(std::move(m));
    }
  }
  co_return out;
}

asio::awaitable<std::vector<task>> redis_store::dead_letters(std::size_t offset,
                                                             std::size_t limit) {
  co_await impl_->open();
  co_return co_await merged_page(impl_->conn, impl_->keys, 4, true, offset, limit,
                                 task_state::dead);
}

asio::awaitable<std::vector<task>> redis_store::in_flight(std::size_t offset, std::size_t limit) {
  co_await impl_->open();
  // Each shard's leased set, and its inflight set (leases taken by older versions).
  std::vector<std::vector<std::string>> sources;
  std::vector<bool> leased;
  for (unsigned s = 0; s < shards(); ++s) {
    sources.push_back(impl_->keys[s]);
    sources.back()[2] = impl_->leased_keys[s];
    leased.push_back(true);
    sources.push_back(impl_->keys[s]);
    leased.push_back(false);
  }
  co_return co_await merged_page(impl_->conn, sources, 2, false, offset, limit,
                                 task_state::in_flight, leased);
}

asio::awaitable<void> redis_store::restore(task t) {
  if (t.id.empty()) {
    throw std::invalid_argument("restore: the task id is empty");
  }
  if (t.max_attempts == 0) {
    throw std::invalid_argument("task '" + t.id + "': max_attempts must be at least 1");
  }
  if (t.retry) {
    schedule::validate(*t.retry, "task '" + t.id + "'");
  }
  co_await impl_->open();
  if (t.occurrence == time_point{}) {
    t.occurrence = t.due;
  }
  const auto shard = impl_->shard_for(t.id);
  if (t.state == task_state::dead) {
    std::vector<std::string> args{
        t.id, detail::encode_record(t), std::to_string(impl_->options.dead_max_count),
        std::to_string(std::chrono::duration_cast<micros>(impl_->options.dead_max_age).count())};
    co_await impl_->run_durable<long long>(impl_->restore_dead_script, shard, std::move(args),
                                           "restore");
    co_return;
  }
  // Scheduled, or in flight when exported (its run may not have finished): waiting again.
  const time_point due = t.due != time_point{} ? t.due : t.occurrence;
  std::vector<std::string> args{t.id, micros_text(due), impl_->waiting_record(t), "0",
                                impl_->events_arg};
  co_await impl_->run_durable<long long>(impl_->schedule_script, shard, std::move(args), "restore");
  impl_->count_events(event_kind::scheduled);
}

asio::awaitable<bool> redis_store::replay(std::string id) {
  co_await impl_->open();
  const auto shard = impl_->shard_for(id);
  std::vector<std::string> args{std::move(id), impl_->events_arg};
  const bool replayed = co_await impl_->run_script<long long>(impl_->replay_script, shard,
                                                              std::move(args), "replay") == 1;
  if (replayed) {
    impl_->count_events(event_kind::scheduled);
  }
  co_return replayed;
}

asio::awaitable<std::size_t> redis_store::purge(std::string id) {
  co_await impl_->open();
  std::size_t removed = 0;
  for (unsigned s = 0; s < shards(); ++s) {
    if (!id.empty() && s != impl_->shard_for(id)) {
      continue;
    }
    std::vector<std::string> args{id};
    removed += static_cast<std::size_t>(
        co_await impl_->run_script<long long>(impl_->purge_script, s, std::move(args), "purge"));
  }
  co_return removed;
}

asio::awaitable<std::vector<limit_state>> redis_store::limit_states() {
  co_await impl_->open();
  std::vector<limit_state> out;
  const auto now_us = now().time_since_epoch().count();
  for (const auto& [type, limit] : impl_->limits) {
    limit_state st;
    st.type = type;
    st.limit = limit;
    const auto window =
        limit.rate ? std::chrono::duration_cast<micros>(limit.rate->per).count() : 0;
    redis::request req;
    req.push("ZCOUNT", impl_->limit_key(type, "running"), "(" + std::to_string(now_us), "+inf");
    req.push("ZCOUNT", impl_->limit_key(type, "starts"), "(" + std::to_string(now_us - window),
             "+inf");
    redis::response<long long, long long> counts;
    co_await impl_->conn.exec(req, counts);
    st.running = static_cast<std::uint64_t>(value_or_throw(std::get<0>(counts), "limit_states"));
    if (limit.rate) {
      st.recent_starts =
          static_cast<std::uint64_t>(value_or_throw(std::get<1>(counts), "limit_states"));
    }
    for (unsigned s = 0; s < shards(); ++s) {
      redis::request card;
      card.push("ZCARD", impl_->keys[s][11] + ":" + type);
      redis::response<long long> held;
      co_await impl_->conn.exec(card, held);
      st.held += static_cast<std::uint64_t>(value_or_throw(std::get<0>(held), "limit_states"));
    }
    out.push_back(std::move(st));
  }
  co_return out;
}

}  // namespace corvo::schedule
