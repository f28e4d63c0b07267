// The Redis store's task operations (redis_store.hpp): schedule, get, cancel, reschedule,
// claim, ack, nack, extend and the wake-up watch. Inspection and administration are in
// redis_store_admin.cpp; the state both share in redis_store_impl.hpp.

#include "redis_store_impl.hpp"

namespace corvo::schedule {

redis_store::redis_store(redis::client& commands, redis::client_config subscriber,
                         redis_store_options options)
    : impl_(std::make_unique<impl>(commands, std::move(subscriber), std::move(options))) {}

redis_store::~redis_store() = default;

const redis_store_options& redis_store::options() const noexcept {
  return impl_->options;
}

unsigned redis_store::shards() const noexcept {
  return impl_->options.shards;
}

unsigned redis_store::shard_of(std::string_view id) const noexcept {
  return impl_->shard_for(id);
}

std::string redis_store::events_key(unsigned shard) const {
  return impl_->keys.at(shard).at(12);
}

asio::awaitable<std::unique_ptr<event_reader>> redis_store::events(event_query query) {
  co_await impl_->open();
  std::vector<std::string> streams;
  for (const auto& k : impl_->keys) {
    streams.push_back(k.at(12));
  }
  co_return co_await detail::make_redis_event_reader(impl_->conn, std::move(streams),
                                                     std::move(query));
}

event_counts redis_store::events_written() const noexcept {
  return impl_->tally.snapshot();
}

std::string redis_store::dedup_window_key(std::string_view key) const {
  return impl_->dedup_window_key(key);
}

std::vector<std::string> redis_store::keys_of(unsigned shard) const {
  const auto& k = impl_->keys.at(shard);
  return {k.begin(), k.begin() + 12};  // the events stream is events_key()
}

std::string redis_store::leased_key(unsigned shard) const {
  return impl_->leased_keys.at(shard);
}

std::string redis_store::shard_count_key() const {
  return impl_->shard_count_key();
}

asio::awaitable<void> redis_store::open() {
  co_await impl_->open();
}

asio::awaitable<void> redis_store::schedule(task t) {
  co_await schedule_as(std::move(t), false);
}

asio::awaitable<bool> redis_store::schedule_if_absent(task t) {
  co_return co_await schedule_as(std::move(t), true);
}

asio::awaitable<bool> redis_store::schedule_as(task t, bool if_absent) {
  prepare_schedule(t);
  co_await impl_->open();
  std::vector<std::string> args{t.id, micros_text(t.due), impl_->waiting_record(t),
                                if_absent ? "1" : "0", impl_->events_arg};
  const auto scheduled = co_await impl_->run_durable<long long>(
      impl_->schedule_script, impl_->shard_for(t.id), std::move(args), "schedule");
  if (scheduled == 1) {
    impl_->count_events(event_kind::scheduled);
  }
  co_return scheduled == 1;
}

asio::awaitable<dedup_outcome> redis_store::schedule_deduplicated(task t, dedup_options options) {
  prepare_schedule(t);
  check_window(t, options);
  co_await impl_->open();
  const auto shard = impl_->shard_for(t.id);
  auto keys = impl_->keys[shard];
  keys.push_back(impl_->window_key(shard, t.id));
  std::vector<std::string> args{t.id,
                                micros_text(t.due),
                                impl_->waiting_record(t),
                                std::to_string(options.window.count()),
                                options.mode == dedup_mode::drop ? "drop" : "replace",
                                impl_->events_arg};
  const auto outcome = co_await impl_->run_durable_on<std::string>(
      impl_->schedule_dedup_script, std::move(keys), std::move(args), "schedule_deduplicated");
  if (outcome != "dropped") {
    impl_->count_events(event_kind::scheduled);
  }
  if (outcome == "replaced") {
    co_return dedup_outcome::replaced;
  }
  co_return outcome == "dropped" ? dedup_outcome::dropped : dedup_outcome::scheduled;
}

asio::awaitable<std::optional<task>> redis_store::get(std::string id) {
  co_await impl_->open();
  const auto& k = impl_->keys[impl_->shard_for(id)];
  redis::request req;
  req.push("HGET", k[1], id);
  req.push("ZSCORE", k[0], id);
  req.push("ZSCORE", k[2], id);
  req.push("ZSCORE", k[4], id);
  req.push("ZSCORE", k[7], id);
  req.push("ZSCORE", k[9], id);   // due:high
  req.push("ZSCORE", k[10], id);  // due:low
  req.push("ZSCORE", k[11], id);  // held back by a limit
  redis::response<std::optional<std::string>, std::optional<double>, std::optional<double>,
                  std::optional<double>, std::optional<double>, std::optional<double>,
                  std::optional<double>, std::optional<double>>
      resp;
  co_await impl_->conn.exec(req, resp);
  const auto& record = value_or_throw(std::get<0>(resp), "get");
  if (!record) {
    // Not in the tasks hash: waiting in the compact tier, or unknown.
    const auto shard = impl_->shard_for(id);
    std::vector<std::string> args{id};
    const auto compact = co_await impl_->run_script<std::vector<std::string>>(
        impl_->compact_peek_script, shard, std::move(args), "get");
    if (compact.size() != 2) {
      co_return std::nullopt;
    }
    task t;
    t.id = std::move(id);
    detail::decode_record(compact[0], t);
    t.state = task_state::scheduled;
    t.due = *parse_time(compact[1]);
    default_occurrence(t);
    co_return t;
  }
  task t;
  t.id = std::move(id);
  detail::decode_record(*record, t);
  auto waiting = value_or_throw(std::get<1>(resp), "get");
  for (const auto& level :
       {value_or_throw(std::get<5>(resp), "get"), value_or_throw(std::get<6>(resp), "get"),
        value_or_throw(std::get<4>(resp), "get"), value_or_throw(std::get<7>(resp), "get")}) {
    if (!waiting) {
      waiting = level;  // another priority's due set, set aside by a pause or held back
    }
  }
  if (waiting) {
    t.state = task_state::scheduled;
    t.due = from_micros(*waiting);
    default_occurrence(t);
  } else if (value_or_throw(std::get<3>(resp), "get")) {
    t.state = task_state::dead;
  } else if (!detail::lease_token_of(*record).empty() || value_or_throw(std::get<2>(resp), "get")) {
    // A lease written into the record (or taken by an older version: inflight).
    t.state = task_state::in_flight;
  } else {
    // Neither waiting nor dead: in flight with a lease kept in its token, which a scan of the
    // shard's leased set finds (it holds only the tasks in flight).
    std::vector<std::string> args{t.id};
    const auto token = co_await impl_->run_script<std::string>(
        impl_->lease_of_script, impl_->shard_for(t.id), std::move(args), "get");
    if (!token.empty()) {
      t.state = task_state::in_flight;
      detail::apply_lease(token, t);
    }
  }
  co_return t;
}

asio::awaitable<bool> redis_store::cancel(std::string id) {
  co_await impl_->open();
  const auto shard = impl_->shard_for(id);
  std::vector<std::string> args{std::move(id), impl_->events_arg};
  const bool cancelled = co_await impl_->run_durable<long long>(impl_->cancel_script, shard,
                                                                std::move(args), "cancel") == 1;
  if (cancelled) {
    impl_->count_events(event_kind::cancelled);
  }
  co_return cancelled;
}

asio::awaitable<bool> redis_store::reschedule(std::string id, time_point due) {
  co_await impl_->open();
  const auto shard = impl_->shard_for(id);
  std::vector<std::string> args{std::move(id), micros_text(due), impl_->events_arg};
  const bool moved = co_await impl_->run_script<long long>(impl_->reschedule_script, shard,
                                                           std::move(args), "reschedule") == 1;
  if (moved) {
    impl_->count_events(event_kind::scheduled);
  }
  co_return moved;
}

asio::awaitable<claim_result> redis_store::claim(unsigned shard, std::size_t limit,
                                                 std::chrono::milliseconds lease) {
  co_await impl_->open();
  std::vector<std::string> args{
      std::to_string(limit),
      std::to_string(lease.count()),
      std::to_string(impl_->options.dead_max_count),
      std::to_string(std::chrono::duration_cast<micros>(impl_->options.dead_max_age).count()),
      random_hex(1),
      std::to_string(std::chrono::duration_cast<micros>(impl_->options.priority_aging).count()),
      std::to_string(impl_->options.claim_ahead.count()),
      std::to_string(impl_->limit_types.size())};
  args.insert(args.end(), impl_->claim_limit_args.begin(), impl_->claim_limit_args.end());
  args.push_back(impl_->events_arg);
  args.emplace_back(impl_->options.compatible_leases ? "1" : "0");
  auto reply = co_await impl_->run_limited<std::vector<std::string>>(
      impl_->claim_script, shard, impl_->claim_limit_keys, std::move(args), "claim");
  if (reply.size() < 6 || (reply.size() - 6) % 4 != 0) {
    throw std::runtime_error("redis_store claim: malformed reply of " +
                             std::to_string(reply.size()) + " elements");
  }
  claim_result out;
  out.store_now = *parse_time(reply[0]);
  out.next_due = parse_time(reply[1]);
  out.ahead = impl_->options.claim_ahead;
  out.next_lease_expiry = parse_time(reply[2]);
  out.permit_at = impl_->split_limits ? std::nullopt : parse_time(reply[3]);
  impl_->count_reported(reply[4], "claim");
  for (std::size_t i = 6; i < reply.size(); i += 4) {
    if (reply[i + 1].empty()) {  // a lease kept in its token: the claim's prefix and due time
      if (reply[5].empty()) {
        throw std::runtime_error("redis_store claim: task '" + reply[i] +
                                 "' came without a lease token or the claim's token prefix");
      }
      reply[i + 1] = reply[5] + reply[i + 2];
    }
    out.tasks.push_back(claimed_from(shard, out.store_now, &reply[i]));
  }
  if (impl_->split_limits) {
    // A cluster: reply[3] holds the held counts; the permits are taken in their own slots.
    co_await impl_->start_held(shard, limit, lease, reply[3], out);
  }
  co_return out;
}

asio::awaitable<std::size_t> redis_store::ack(unsigned shard, std::vector<completion> done) {
  if (done.empty()) {
    co_return 0;
  }
  co_await impl_->open();
  std::vector<std::string> args{std::to_string(impl_->shard_limit_types.size())};
  args.insert(args.end(), impl_->shard_limit_types.begin(), impl_->shard_limit_types.end());
  args.push_back(impl_->events_arg);
  args.reserve(args.size() + done.size() * 3);
  std::vector<std::string> permits;  // a cluster: released after the shard's script
  for (auto& c : done) {
    if (impl_->split_limits) {
      permits.push_back(c.token);
    }
    args.push_back(std::move(c.id));
    args.push_back(std::move(c.token));
    args.push_back(c.next_due ? micros_text(*c.next_due) : std::string());
  }
  // Never waits for a connection: a dispatcher's acker retries, and a stopping one gives up
  // on a store it cannot reach (the tasks run again when their leases expire).
  redis::request::config unwaiting;
  unwaiting.fail_if_not_connected = true;
  using reply_type = std::vector<std::string>;  // {acked, events written}
  reply_type reply;
  if (!impl_->limit_types.empty()) {
    if (impl_->options.wait_replicas > 0) {
      reply = co_await impl_->run_durable_on<reply_type>(
          impl_->ack_script, impl_->keys_with(shard, impl_->release_limit_keys), std::move(args),
          "ack");
    } else {
      reply = co_await impl_->run_limited<reply_type>(
          impl_->ack_script, shard, impl_->release_limit_keys, std::move(args), "ack", unwaiting);
    }
  } else {
    reply = co_await impl_->run_durable<reply_type>(impl_->ack_script, shard, std::move(args),
                                                    "ack", unwaiting);
  }
  const auto acked = static_cast<std::size_t>(impl_->count_outcome(reply, "ack"));
  if (!permits.empty()) {
    co_await impl_->release_permits(permits, "ack");
  }
  co_return acked;
}

asio::awaitable<bool> redis_store::nack(unsigned shard, failure failed) {
  co_await impl_->open();
  std::vector<std::string> permits;  // a cluster: released after the shard's script
  if (impl_->split_limits) {
    permits.push_back(failed.token);
  }
  std::vector<std::string> args{
      std::move(failed.id),
      std::move(failed.token),
      detail::one_line(failed.error),
      failed.retry_in ? std::to_string(failed.retry_in->count()) : std::string(),
      std::to_string(impl_->options.dead_max_count),
      std::to_string(std::chrono::duration_cast<micros>(impl_->options.dead_max_age).count()),
      std::to_string(impl_->shard_limit_types.size())};
  args.insert(args.end(), impl_->shard_limit_types.begin(), impl_->shard_limit_types.end());
  args.push_back(impl_->events_arg);
  // Never waits for a connection (as ack): the dispatcher retries, and a stopping one gives
  // up on a store it cannot reach.
  redis::request::config unwaiting;
  unwaiting.fail_if_not_connected = true;
  const auto reply = co_await impl_->run_limited<std::vector<std::string>>(
      impl_->nack_script, shard, impl_->release_limit_keys, std::move(args), "nack", unwaiting);
  const bool reported = impl_->count_outcome(reply, "nack") == 1;
  if (!permits.empty()) {
    co_await impl_->release_permits(permits, "nack");
  }
  co_return reported;
}

asio::awaitable<std::vector<bool>> redis_store::extend(unsigned shard,
                                                       std::vector<lease_ref> leases,
                                                       std::chrono::milliseconds lease) {
  std::vector<bool> held;
  if (leases.empty()) {
    co_return held;
  }
  co_await impl_->open();
  const auto count = leases.size();
  std::vector<std::string> args{std::to_string(lease.count()),
                                std::to_string(impl_->shard_limit_types.size())};
  std::vector<std::string> tokens;  // a cluster: the permits are renewed in their own slots
  for (auto& l : leases) {
    if (impl_->split_limits) {
      tokens.push_back(l.token);
    }
    args.push_back(std::move(l.id));
    args.push_back(std::move(l.token));
  }
  const auto reply = co_await impl_->run_limited<std::vector<std::string>>(
      impl_->extend_script, shard, impl_->release_limit_keys, std::move(args), "extend");
  if (reply.size() != count) {
    throw std::runtime_error("redis_store extend: " + std::to_string(reply.size()) +
                             " answers for " + std::to_string(count) + " leases");
  }
  std::vector<std::string> renewed;
  for (std::size_t i = 0; i < reply.size(); ++i) {
    held.push_back(reply[i] == "1");
    if (held.back() && i < tokens.size()) {
      renewed.push_back(std::move(tokens[i]));
    }
  }
  if (!renewed.empty()) {
    co_await impl_->renew_permits(renewed, lease);
  }
  co_return held;
}

void redis_store::set_limits(type_limits limits) {
  impl_->set_limits(std::move(limits));
}

asio::awaitable<void> redis_store::watch_wakes(std::function<void(unsigned shard)> on_wake) {
  co_await impl_->open();
  auto executor = co_await asio::this_coro::executor;
  redis::client subscriber(executor, impl_->subscriber);
  task_group group(executor);
  co_await group.spawn(run_client(subscriber));
  std::exception_ptr ended_by;
  try {
    redis::request subscribe;
    std::vector<std::string> channels;
    for (const auto& k : impl_->keys) {
      channels.push_back(k[6]);
    }
    for (auto& channel : impl_->permit_channels()) {
      channels.push_back(std::move(channel));  // a cluster's released permits
    }
    subscribe.push("SSUBSCRIBE", channels);
    co_await subscriber.exec(subscribe);
    // Subscribed: a wake-up published before now reached no one, so every shard is woken once
    // (its claim finds what landed meanwhile).
    for (unsigned s = 0; s < shards(); ++s) {
      on_wake(s);
    }
    for (;;) {
      const auto push = co_await subscriber.receive();
      // [smessage, channel, payload]: the first node is the push aggregate itself.
      if (push.size() >= 4 && push[1].value == "smessage") {
        const auto it = impl_->channel_to_shard.find(push[2].value);
        if (it != impl_->channel_to_shard.end()) {
          on_wake(it->second);
        } else if (const auto waiting = impl_->shard_of_prefix(push[3].value)) {
          on_wake(*waiting);  // a permit released: the waiting shard it names
        }
      }
    }
  } catch (...) {
    ended_by = std::current_exception();
  }
  // The reset below also clears the caller's pending cancellation (the state belongs to the
  // whole coroutine thread), so a cancelled watch must end as operation_aborted whatever
  // error the subscriber reported, or the caller would take it for a lost subscription and
  // watch again, forever.
  const auto cancellation = co_await asio::this_coro::cancellation_state;
  if (cancellation.cancelled() != asio::cancellation_type::none) {
    ended_by = std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted));
  }
  co_await asio::this_coro::reset_cancellation_state();
  subscriber.cancel();
  co_await group.join();
  std::rethrow_exception(ended_by);
}

}  // namespace corvo::schedule
