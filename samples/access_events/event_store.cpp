#include "event_store.hpp"

#include <boost/asio/use_awaitable.hpp>
#include <cstdio>

namespace access_events {

std::string utc_day(std::int64_t at_ms) {
  using namespace std::chrono;
  const auto day = floor<days>(sys_time<milliseconds>(milliseconds(at_ms)));
  const year_month_day ymd(day);
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return text;
}

asio::awaitable<void> event_store::create_schema() {
  std::vector<db::statement> schema = {
      {"CREATE TABLE IF NOT EXISTS access_event ("
       "stream_id TEXT PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, category TEXT NOT NULL, "
       "method TEXT NOT NULL, path TEXT NOT NULL, status BIGINT NOT NULL, day TEXT NOT NULL, "
       "at_ms BIGINT NOT NULL)",
       {}},
      {"CREATE INDEX IF NOT EXISTS access_event_day ON access_event (day, category)", {}},
      {"CREATE INDEX IF NOT EXISTS access_event_at ON access_event (at_ms)", {}}};
  co_await db_.transaction(std::move(schema));
}

asio::awaitable<std::int64_t> event_store::insert(
    std::vector<std::pair<std::string, access_event>> events) {
  std::vector<db::row> rows;
  rows.reserve(events.size());
  for (auto& [stream_id, e] : events) {
    rows.push_back({std::move(stream_id), std::move(e.event_id), std::move(e.category),
                    std::move(e.method), std::move(e.path), std::int64_t{e.status},
                    utc_day(e.at_ms), e.at_ms});
  }
  // No conflict target: a row clashing on either unique column is skipped.
  co_return co_await db_.execute_batch(
      "INSERT INTO access_event (stream_id, event_id, category, method, path, status, day, "
      "at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
      std::move(rows));
}

asio::awaitable<std::map<std::string, std::int64_t>> event_store::summary(std::string day) {
  db::row params = {std::move(day)};
  auto result = co_await db_.query(
      "SELECT category, COUNT(*) FROM access_event WHERE day = $1 GROUP BY category", params);
  std::map<std::string, std::int64_t> counts;
  for (const auto& row : result.rows) {
    counts[std::get<std::string>(row.at(0))] = std::get<std::int64_t>(row.at(1));
  }
  co_return counts;
}

asio::awaitable<std::int64_t> event_store::count() {
  auto result = co_await db_.query("SELECT COUNT(*) FROM access_event");
  co_return std::get<std::int64_t>(result.rows.at(0).at(0));
}

asio::awaitable<std::int64_t> event_store::delete_older_than(std::int64_t cutoff_ms) {
  db::row params = {cutoff_ms};
  co_return co_await db_.execute("DELETE FROM access_event WHERE at_ms < $1", params);
}

batch_writer::batch_writer(asio::any_io_executor executor, event_store& store,
                           std::size_t max_batch)
    : store_(store),
      batches_(std::move(executor), max_batch,
               [this](std::vector<stored_event>& events) { return insert(events); }) {}

asio::awaitable<void> batch_writer::store(std::string stream_id, access_event event) {
  co_await batches_.submit(stored_event(std::move(stream_id), std::move(event)));
}

asio::awaitable<void> batch_writer::insert(std::vector<stored_event>& events) {
  const auto n = static_cast<std::int64_t>(events.size());
  const auto inserted = co_await store_.insert(std::move(events));
  stored_ += static_cast<std::uint64_t>(inserted);
  duplicates_ += static_cast<std::uint64_t>(n - inserted);
}

}  // namespace access_events
