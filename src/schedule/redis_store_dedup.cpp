// The Redis store's deduplication by key (redis_store::schedule_deduplicated_by_key). The
// window of a key lives in the key's slot, the task in its id's shard (another slot, maybe
// another cluster node), so a schedule takes up to four steps, each one atomic script on one
// slot:
//
//   1. window (the key's slot): no window: open one held by this schedule's 'TICKET ID'.
//      Open: drop mode stops here (dropped); replace mode makes this schedule the holder
//      (closing time unchanged) and returns the previous holder P.
//   2. schedule (t's shard): when P's task is in the same shard, void P first (below); then
//      write t unless t's own ticket was voided already (a later schedule replaced it before
//      it arrived), marking the ticket 'landed'.
//   3. void P (P's shard, when it is another one): P's ticket marker becomes 'void' unless it
//      is 'landed' (so P's schedule, if still on the way, does nothing when it arrives); P's
//      task is removed if it waits. Result: removed / blocked (not arrived) / gone (arrived,
//      no longer waiting: ran, in flight, dead or cancelled; not touched).
//   4. gone: restart the window if this schedule still holds it (open for the full window
//      from now, as a schedule after a run opens a new window).
//
// Concurrent callers (any processes): step 1 is serialised on the key, so the holders form
// a chain in which each schedule is the previous holder of exactly one later schedule (the
// next holder), which voids it; the last holder is voided by none. A voided schedule's task
// is removed when it arrived first, and never written when it arrives later (its ticket
// marker and its write are checked in one script, step 2). So exactly one task, the last
// holder's, is left waiting.
//
// Crash of a caller between steps (docs/scheduler.md lists the same):
//   after 1: the window is held by a task never written; the task it replaced (P) is not
//     voided and stays waiting (it runs); a later schedule in the window replaces the unwritten
//     one (reported replaced) and leaves P alone: P and that later task both run.
//   after 2 (P in another shard): P is not voided: P and t both run.
//   after 3: the window is not restarted (it closes at its original time).
//   drop mode, after 1: the window is held by a task never written: schedules of the key are
//     dropped until it closes (nothing runs for that window).
// The ticket markers expire after the window plus one minute: a caller that stalls longer
// than that between steps 1 and 2 may write a task that was replaced meanwhile (two run).

#include "redis_store_impl.hpp"

namespace corvo::schedule {
namespace {

using detail::redis_store_support::micros_text;

// How long a ticket marker outlives the window: a caller that stalls longer than this
// between its window step and its schedule step may write a task replaced meanwhile.
constexpr std::chrono::milliseconds marker_grace = std::chrono::minutes(1);

dedup_result outcome_of(dedup_outcome outcome, std::string replaced = {}) {
  dedup_result r;
  r.outcome = outcome;
  r.replaced_id = std::move(replaced);
  return r;
}

}  // namespace

asio::awaitable<dedup_result> redis_store::schedule_deduplicated_by_key(task t, std::string key,
                                                                        dedup_options options) {
  prepare_schedule(t);
  if (key.empty()) {
    throw std::invalid_argument("task '" + t.id + "': the deduplication key is empty");
  }
  check_window(t, options);
  co_await impl_->open();
  const auto record = impl_->waiting_record(t);  // before the window: it may refuse the task
  const auto ticket = random_hex(2);             // 128 bits, unique to this call
  const std::string holder = ticket + " " + t.id;
  const auto window_ms = std::to_string(options.window.count());
  const auto marker_ttl = std::to_string((options.window + marker_grace).count());

  // 1. The window.
  std::vector<std::string> window_keys{impl_->dedup_window_key(key)};
  std::vector<std::string> window_args{holder, window_ms,
                                       options.mode == dedup_mode::drop ? "drop" : "replace"};
  const auto opened = co_await impl_->run_durable_on<std::vector<std::string>>(
      impl_->dedup_window_script, window_keys, std::move(window_args),
      "schedule_deduplicated_by_key");
  const bool well_formed =
      (opened.size() == 1 && (opened[0] == "open" || opened[0] == "dropped")) ||
      (opened.size() == 2 && opened[0] == "swapped");
  if (!well_formed) {
    throw std::runtime_error("redis_store schedule_deduplicated_by_key: malformed reply");
  }
  if (opened[0] == "dropped") {
    co_return outcome_of(dedup_outcome::dropped);
  }
  std::string prev_ticket, prev_id;
  if (opened[0] == "swapped") {
    const auto space = opened[1].find(' ');
    if (space == std::string::npos) {
      throw std::runtime_error("redis_store schedule_deduplicated_by_key: the window of key '" +
                               key + "' holds '" + opened[1] + "', not 'TICKET ID'");
    }
    prev_ticket = opened[1].substr(0, space);
    prev_id = opened[1].substr(space + 1);
  }
  const bool replacing = !prev_ticket.empty();

  // 2. The task (and the replaced one's void when it is in the same shard).
  const auto shard = impl_->shard_for(t.id);
  auto keys = impl_->keys[shard];
  keys.push_back(impl_->dedup_marker_key(shard, ticket));
  std::vector<std::string> args{t.id, micros_text(t.due), record, impl_->events_arg, marker_ttl};
  const bool same_shard = replacing && impl_->shard_for(prev_id) == shard;
  if (same_shard) {
    keys.push_back(impl_->dedup_marker_key(shard, prev_ticket));
    args.push_back(prev_id);
  }
  const auto written = co_await impl_->run_durable_on<std::vector<std::string>>(
      impl_->dedup_schedule_script, std::move(keys), std::move(args),
      "schedule_deduplicated_by_key");
  if (written.size() != 2) {
    throw std::runtime_error("redis_store schedule_deduplicated_by_key: malformed reply");
  }
  if (written[0] == "landed") {
    impl_->count_events(event_kind::scheduled);
  }
  if (!replacing) {
    co_return outcome_of(dedup_outcome::scheduled);
  }

  // 3. The replaced one's void, in its own shard.
  std::string voided = written[1];
  if (!same_shard) {
    const auto prev_shard = impl_->shard_for(prev_id);
    auto prev_keys = impl_->keys[prev_shard];
    prev_keys.push_back(impl_->dedup_marker_key(prev_shard, prev_ticket));
    std::vector<std::string> void_args{prev_id, t.id, marker_ttl, impl_->events_arg};
    voided = co_await impl_->run_durable_on<std::string>(impl_->dedup_void_script,
                                                         std::move(prev_keys), std::move(void_args),
                                                         "schedule_deduplicated_by_key");
  }
  if (voided != "removed" && voided != "blocked" && voided != "gone") {
    throw std::runtime_error("redis_store schedule_deduplicated_by_key: malformed reply '" +
                             voided + "'");
  }
  if (voided == "removed" && prev_id != t.id) {
    impl_->count_events(event_kind::cancelled);
  }
  if (voided == "removed" || voided == "blocked") {
    co_return outcome_of(dedup_outcome::replaced, std::move(prev_id));
  }

  // 4. The replaced task had run (or runs): a new window.
  std::vector<std::string> restart_args{holder, window_ms};
  co_await impl_->run_durable_on<long long>(impl_->dedup_restart_script, std::move(window_keys),
                                            std::move(restart_args),
                                            "schedule_deduplicated_by_key");
  co_return outcome_of(dedup_outcome::scheduled);
}

}  // namespace corvo::schedule
