#pragma once
// The samples' database access: SQLite (embedded, the default) or PostgreSQL (given a
// `postgresql://` URL), behind one asynchronous interface.
//
// No call blocks the io_context: every statement runs on a small thread pool owned by the
// `database`, each pool thread using a connection of its own, and the awaiting coroutine
// resumes on its own executor once the statement has finished. SQL is written once for both
// backends: parameters are `$1`, `$2`, … (SQLite accepts these as named parameters), and the
// samples keep to the SQL both understand (`INSERT … ON CONFLICT (…) DO NOTHING`, `BIGINT`,
// `TEXT`).
//
//   db::database store({.url = "sqlite:events.db"});
//   co_await store.execute("CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, n BIGINT)");
//   co_await store.execute_batch("INSERT INTO t VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
//                                rows);
//   auto counts = co_await store.query("SELECT n, COUNT(*) FROM t GROUP BY n");
//
// Cancellation: none. A statement that has started runs to its end (a transaction commits
// or rolls back as a whole); the coroutine resumes when it has.

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace corvo::samples::db {

/// One SQL value: NULL, a 64-bit integer, a double or text.
using value = std::variant<std::monostate, std::int64_t, double, std::string>;

/// One row of a result, or the parameters of one statement.
using row = std::vector<value>;

/// A statement and its parameters (`$1` is `params[0]`).
struct statement {
  std::string sql;
  row params;
};

/// What a statement produced: its columns and rows (for a query), and the number of rows it
/// inserted, updated or deleted (for the others).
struct result {
  std::vector<std::string> columns;
  std::vector<row> rows;
  std::int64_t affected_rows = 0;
};

/// A statement failed (SQL error, constraint violation, lost connection): the message is the
/// database's, prefixed with the backend's name.
class database_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class backend { sqlite, postgresql };

struct database_options {
  /// `postgresql://…` or `postgres://…` (libpq connection URI) for PostgreSQL; for SQLite
  /// `sqlite:PATH`, `sqlite::memory:` or a plain file path.
  std::string url = "sqlite::memory:";
  /// Pool threads, each with its own connection; 0 picks 1 for SQLite (one writer at a
  /// time anyway) and 4 for PostgreSQL. An in-memory SQLite database always uses 1.
  std::size_t threads = 0;
};

/// Which backend `url` selects (see `database_options::url`).
backend backend_of(std::string_view url) noexcept;

/// A database reached through a pool of connections on a thread pool. Connections are made
/// on first use (construction does not block); a PostgreSQL connection found broken is
/// reset before the next statement. Not copyable, not movable. Destruction waits for the
/// statements already started; calls must not be made after it began.
class database {
 public:
  explicit database(database_options options);
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  backend kind() const noexcept;

  /// Runs one statement and returns its rows and affected-row count. Throws
  /// `database_error`.
  boost::asio::awaitable<result> query(std::string sql, row params = {});

  /// Runs one statement and returns the number of rows it affected. Throws `database_error`.
  boost::asio::awaitable<std::int64_t> execute(std::string sql, row params = {});

  /// Runs `sql` once per parameter row, all in one transaction (prepared once): either every
  /// row is applied or none. Returns the sum of affected rows (with `ON CONFLICT DO
  /// NOTHING`, the rows that were new). Throws `database_error` after rolling back.
  boost::asio::awaitable<std::int64_t> execute_batch(std::string sql, std::vector<row> rows);

  /// Runs `statements` in order in one transaction; returns one result per statement.
  /// Throws `database_error` after rolling back if any of them fails.
  boost::asio::awaitable<std::vector<result>> transaction(std::vector<statement> statements);

  /// Makes sure a connection can be made (connects one now, on the pool). Throws
  /// `database_error` if not.
  boost::asio::awaitable<void> ping();

  class impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace corvo::samples::db
