#include "event_store.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/log.hpp>
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

struct batch_writer::batch {
  explicit batch(asio::any_io_executor executor)
      : linger(executor), done(executor, asio::steady_timer::time_point::max()) {}
  std::vector<std::pair<std::string, access_event>> events;
  asio::steady_timer linger;  // the flush's wait for more events; cancelled when full
  asio::steady_timer done;    // cancelled when the insert finished
  bool finished = false;
  std::exception_ptr error;
};

batch_writer::batch_writer(asio::any_io_executor executor, event_store& store,
                           std::size_t max_batch, std::chrono::milliseconds linger)
    : executor_(std::move(executor)), store_(store), max_batch_(max_batch), linger_(linger) {}

asio::awaitable<void> batch_writer::store(std::string stream_id, access_event event) {
  if (!open_) {
    open_ = std::make_shared<batch>(executor_);
    asio::co_spawn(executor_, flush(open_), [](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          CORVO_LOG(error, "access_events") << "batch flush failed: " << x.what();
        }
      }
    });
  }
  auto mine = open_;
  mine->events.emplace_back(std::move(stream_id), std::move(event));
  if (mine->events.size() >= max_batch_) {
    open_.reset();          // full: the next event starts a new batch
    mine->linger.cancel();  // the flush need not wait for more
  }
  while (!mine->finished) {
    boost::system::error_code ignored;
    co_await mine->done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) {
      throw boost::system::system_error(asio::error::operation_aborted);
    }
  }
  if (mine->error) {
    std::rethrow_exception(mine->error);
  }
}

asio::awaitable<void> batch_writer::flush(std::shared_ptr<batch> b) {
  // Let the handlers started in the same read join (or until the batch is full).
  boost::system::error_code ignored;
  if (b->events.size() < max_batch_) {
    b->linger.expires_after(linger_);
    co_await b->linger.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  if (open_ == b) {
    open_.reset();
  }
  const auto n = static_cast<std::int64_t>(b->events.size());
  try {
    const auto inserted = co_await store_.insert(std::move(b->events));
    stored_ += inserted;
    duplicates_ += n - inserted;
    ++batches_;
  } catch (...) {
    b->error = std::current_exception();
  }
  b->finished = true;
  b->done.cancel();
}

}  // namespace access_events
