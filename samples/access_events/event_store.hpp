#pragma once
// The database half of access_events: the table, the batched idempotent insert the
// consumer group uses, the summary query and the retention delete.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <db/database.hpp>
#include <map>
#include <memory>
#include <sample/batcher.hpp>
#include <string>
#include <vector>

#include "access_log.hpp"

namespace access_events {

namespace db = corvo::samples::db;

/// "YYYY-MM-DD" (UTC) of a time in ms since the epoch.
std::string utc_day(std::int64_t at_ms);

/// The access_event table: one row per stream entry (stream_id, the primary key) and per
/// request (event_id, unique), so re-delivered entries and re-sent appends are stored once.
class event_store {
 public:
  explicit event_store(db::database& database) : db_(database) {}

  /// Creates the table and its indexes if they do not exist.
  asio::awaitable<void> create_schema();
  /// Inserts `events` (stream id, event) in one transaction, skipping any already stored;
  /// returns how many were new.
  asio::awaitable<std::int64_t> insert(std::vector<std::pair<std::string, access_event>> events);
  /// Requests per category on `day` ("YYYY-MM-DD"); categories without any are absent.
  asio::awaitable<std::map<std::string, std::int64_t>> summary(std::string day);
  /// Rows in the table.
  asio::awaitable<std::int64_t> count();
  /// Deletes the rows of events older than `cutoff_ms`; returns how many.
  asio::awaitable<std::int64_t> delete_older_than(std::int64_t cutoff_ms);

 private:
  db::database& db_;
};

/// Gathers the events that the consumer's concurrent handlers store into one insert
/// (group commit, <sample/batcher.hpp>): while one insert runs, the events stored meanwhile
/// gather into the next, up to `max_batch`. A handler returns only once its event is
/// committed (so the consumer acknowledges nothing that is not stored); a failed insert
/// fails every handler of the batch (the consumer retries).
class batch_writer {
 public:
  batch_writer(asio::any_io_executor executor, event_store& store, std::size_t max_batch = 256);

  /// Stores one event; completes once its batch is committed. Throws what the insert threw.
  /// Cancellation (terminal): stops waiting (the batch still commits) and throws.
  asio::awaitable<void> store(std::string stream_id, access_event event);

  /// The inserting loop: run it (as a service) for as long as anything stores.
  asio::awaitable<void> run() { return batches_.run(); }

  std::uint64_t stored() const noexcept { return stored_; }          ///< rows that were new
  std::uint64_t duplicates() const noexcept { return duplicates_; }  ///< rows already there
  std::uint64_t batches() const noexcept { return batches_.batches(); }

 private:
  using stored_event = std::pair<std::string, access_event>;
  asio::awaitable<void> insert(std::vector<stored_event>& events);

  event_store& store_;
  corvo::samples::batcher<stored_event> batches_;
  std::uint64_t stored_ = 0;
  std::uint64_t duplicates_ = 0;
};

}  // namespace access_events
