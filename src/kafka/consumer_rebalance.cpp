#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <sstream>

#include "consumer_impl.hpp"

namespace corvo::kafka {

namespace {

std::string describe(const std::vector<topic_partition>& partitions) {
  std::ostringstream out;
  for (std::size_t i = 0; i < partitions.size(); ++i) {
    out << (i ? ", " : "") << partitions[i].topic << "[" << partitions[i].partition << "]";
  }
  return out.str();
}

std::vector<topic_partition> to_vector(const rd_kafka_topic_partition_list_t* list) {
  std::vector<topic_partition> out;
  if (list == nullptr) {
    return out;
  }
  out.reserve(static_cast<std::size_t>(list->cnt));
  for (int i = 0; i < list->cnt; ++i) {
    out.push_back({list->elems[i].topic, list->elems[i].partition});
  }
  return out;
}

}  // namespace

bool consumer::impl::cooperative() const {
  return std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
}

void consumer::impl::apply_assignment(rd_kafka_topic_partition_list_t* list, bool assign) {
  if (cooperative()) {
    detail::error_ptr error(assign ? rd_kafka_incremental_assign(rk, list)
                                   : rd_kafka_incremental_unassign(rk, list));
    if (error) {
      CORVO_LOG(error, "kafka") << "consumer " << name << ": incremental "
                                << (assign ? "assign" : "unassign")
                                << " failed: " << rd_kafka_error_string(error.get());
    }
    return;
  }
  const auto err = rd_kafka_assign(rk, assign ? list : nullptr);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    CORVO_LOG(error, "kafka") << "consumer " << name
                              << ": assign failed: " << rd_kafka_err2str(err);
  }
}

void consumer::impl::rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list) {
  auto changed_partitions = to_vector(list);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (const auto& tp : changed_partitions) {
      if (find(tp.topic, tp.partition)) {
        continue;
      }
      auto ps = std::make_shared<partition_state>(tp.topic, tp.partition);
      // Separate the partition's queue from the consumer queue before its fetcher starts
      // (on assign), so every message of it arrives there, in order.
      ps->fetch_queue.reset(rd_kafka_queue_get_partition(rk, tp.topic.c_str(), tp.partition));
      if (ps->fetch_queue) {
        rd_kafka_queue_forward(ps->fetch_queue.get(), nullptr);
        wakeup->attach(ps->fetch_queue.get());
      }
      partitions.push_back(std::move(ps));
    }
    apply_assignment(list, true);
    if (changed_partitions.empty()) {
      return;  // cooperative rebalances hand out empty increments
    }
    counters.assigned += changed_partitions.size();
    CORVO_LOG(info, "kafka") << "consumer " << name << ": assigned "
                             << describe(changed_partitions);
    if (options.on_assigned) {
      asio::post(executor, [self = shared_from_this(), tps = std::move(changed_partitions)] {
        self->options.on_assigned(tps);
      });
    }
    return;
  }
  if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    CORVO_LOG(error, "kafka") << "consumer " << name
                              << ": rebalance error: " << rd_kafka_err2str(err);
    apply_assignment(nullptr, false);
    return;
  }
  const bool lost = rd_kafka_assignment_lost(rk) != 0;
  std::vector<partition_ptr> revoked;
  for (const auto& tp : changed_partitions) {
    if (auto ps = find_shared(tp.topic, tp.partition)) {
      ps->revoking = true;
      ps->lost = lost;
      counters.dropped += ps->queue.size();
      ps->queue.clear();
      slots.remove(ps);
      // A lost partition's handlers are cancelled at once; a revoked one's only when they
      // wait to retry (a retry would not be finished before the unassign anyway).
      if (ps->worker_running && (lost || ps->backing_off)) {
        ps->cancel.emit(asio::cancellation_type::terminal);
      }
      revoked.push_back(std::move(ps));
    }
  }
  CORVO_LOG(info, "kafka") << "consumer " << name << ": " << (lost ? "lost " : "revoked ")
                           << describe(changed_partitions);
  detail::partition_list_ptr copy(rd_kafka_topic_partition_list_copy(list));
  const bool busy = std::any_of(revoked.begin(), revoked.end(),
                                [](const partition_ptr& ps) { return ps->worker_running; });
  if (!busy) {
    finish_revoke(std::move(copy), revoked, lost);
    return;
  }
  ++revokes_in_progress;
  asio::co_spawn(executor, wait_and_revoke(shared_from_this(), std::move(copy), revoked, lost),
                 revoke_done{shared_from_this()});
}

bool consumer::impl::any_running(const std::vector<partition_ptr>& revoked) {
  return std::any_of(revoked.begin(), revoked.end(),
                     [](const partition_ptr& ps) { return ps->worker_running; });
}

bool consumer::impl::any_dead_lettering(const std::vector<partition_ptr>& partitions) {
  return std::any_of(partitions.begin(), partitions.end(), [](const partition_ptr& ps) {
    return ps->worker_running && ps->dead_lettering;
  });
}

asio::awaitable<void> consumer::impl::wait_for_cancelled(const std::vector<partition_ptr>& workers,
                                                         clock::time_point deadline,
                                                         clock::time_point send_deadline) {
  for (;;) {
    const auto now = clock::now();
    const bool sending = any_dead_lettering(workers);
    if (!any_running(workers) || (now >= deadline && (!sending || now >= send_deadline))) {
      co_return;
    }
    co_await changed.wait_until(sending ? std::max(deadline, send_deadline) : deadline);
  }
}

asio::awaitable<void> consumer::impl::wait_and_revoke(std::shared_ptr<impl> self,
                                                      detail::partition_list_ptr list,
                                                      std::vector<partition_ptr> revoked,
                                                      bool lost) {
  auto deadline = clock::now() + self->options.revoke_timeout;
  while (any_running(revoked) && clock::now() < deadline) {
    co_await self->changed.wait_until(deadline);
  }
  if (any_running(revoked)) {
    CORVO_LOG(warning, "kafka") << "consumer " << self->name
                                << ": handlers of revoked partitions still running after "
                                << self->options.revoke_timeout.count() << " ms; cancelling them";
    for (auto& ps : revoked) {
      if (ps->worker_running) {
        ps->cancel.emit(asio::cancellation_type::terminal);
      }
    }
    co_await self->wait_for_cancelled(revoked, clock::now() + self->options.revoke_timeout,
                                      clock::now() + self->options.revoke_timeout);
    if (any_running(revoked)) {
      CORVO_LOG(error, "kafka") << "consumer " << self->name
                                << ": handlers ignore cancellation; unassigning anyway";
    }
  }
  self->finish_revoke(std::move(list), revoked, lost);
}

void consumer::impl::finish_revoke(detail::partition_list_ptr list,
                                   const std::vector<partition_ptr>& revoked, bool lost) {
  for (const auto& ps : revoked) {
    if (!lost) {
      if (const auto next = ps->tracker.committable()) {
        store_offset(*ps, *next);
      }
    }
    ps->lost = true;  // a worker still running must not store for it any more
  }
  if (rk != nullptr && !lost && !auto_commit) {
    // With auto-commit librdkafka commits the stored offsets of removed partitions
    // itself; without it, commit them here, before the next owner reads them.
    rd_kafka_commit(rk, nullptr, 1 /* async */);
  }
  if (rk != nullptr) {
    apply_assignment(list.get(), false);
  }
  for (const auto& ps : revoked) {
    release_queue(*ps);
  }
  std::erase_if(partitions, [&](const partition_ptr& ps) {
    return std::find(revoked.begin(), revoked.end(), ps) != revoked.end();
  });
  counters.revoked += revoked.size();
  if (lost) {
    counters.lost += revoked.size();
  }
  if (options.on_revoked) {
    std::vector<topic_partition> tps = to_vector(list.get());
    asio::post(executor, [self = shared_from_this(), tps = std::move(tps), lost] {
      self->options.on_revoked(tps, lost);
    });
  }
}

void consumer::impl::rebalance_fallback(rd_kafka_resp_err_t err,
                                        rd_kafka_topic_partition_list_t* list) noexcept {
  try {
    apply_assignment(list, err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS);
  } catch (...) {
  }
}

}  // namespace corvo::kafka
