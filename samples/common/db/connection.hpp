#pragma once
// Internal: one blocking database connection, used by one pool thread at a time.

#include <memory>
#include <string>
#include <vector>

#include "db/database.hpp"

namespace corvo::samples::db::detail {

class connection {
 public:
  virtual ~connection() = default;
  /// Runs one statement. Throws `database_error`.
  virtual result run(const statement& statement) = 0;
  /// Runs `sql` once per row (prepared once), inside the caller's transaction; returns the
  /// sum of affected rows. Throws `database_error`.
  virtual std::int64_t run_many(const std::string& sql, const std::vector<row>& rows) = 0;
  /// Makes the connection usable again after a failure if it can (PostgreSQL: PQreset).
  virtual void recover() {}
};

/// `sql` with PostgreSQL's `$N` placeholders (outside quoted text) written for SQLite:
/// anonymous `?` when they are exactly `$1`, `$2`, … in the order they appear, each once
/// (SQLite numbers those in order, with no lookup), else `?N` (see sqlite_connection.cpp).
std::string sqlite_placeholders(const std::string& sql);

/// Opens (and creates) the SQLite database at `path` (":memory:" for an in-memory one).
std::unique_ptr<connection> open_sqlite(const std::string& path);

/// Connects to PostgreSQL with a libpq connection URI.
std::unique_ptr<connection> open_postgres(const std::string& url);

}  // namespace corvo::samples::db::detail
