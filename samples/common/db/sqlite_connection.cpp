// SQLite connections: one sqlite3 handle each, WAL journal, waits (rather than fails) while
// another connection writes.
#include <sqlite3.h>

#include <string>
#include <vector>

#include "db/connection.hpp"

namespace corvo::samples::db::detail {

// The statement with PostgreSQL's `$N` placeholders written for SQLite (outside quoted
// text). SQLite gives a `?N` parameter index N, so binding needs no lookup by name; but
// preparing a statement looks every `?N` up in its list of parameter names, a linear
// search (quadratic in a multi-row INSERT: a quarter of coupon_issue's CPU went to it while
// it drained a backlog with 700-parameter INSERTs). So when the placeholders are exactly
// `$1`, `$2`, … `$K` in the order they appear, each once (a generated VALUES list), they
// become anonymous `?`, which SQLite numbers 1…K in that order with no lookup; otherwise (a
// parameter repeated or out of order) `?N`.
std::string sqlite_placeholders(const std::string& sql) {
  struct placeholder {
    std::size_t at;      // of the '$'
    std::size_t length;  // '$' and digits
    std::size_t number;
  };
  std::vector<placeholder> found;
  char quote = 0;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (quote != 0) {
      quote = c == quote ? 0 : quote;  // a doubled quote reopens at once: same result
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '$' && i + 1 < sql.size() && sql[i + 1] >= '1' && sql[i + 1] <= '9') {
      std::size_t end = i + 1;
      std::size_t number = 0;
      while (end < sql.size() && sql[end] >= '0' && sql[end] <= '9') {
        number = number * 10 + static_cast<std::size_t>(sql[end] - '0');
        ++end;
      }
      found.push_back({i, end - i, number});
      i = end - 1;
    }
  }
  bool in_order = true;
  for (std::size_t k = 0; k < found.size() && in_order; ++k) {
    in_order = found[k].number == k + 1;
  }
  std::string out;
  out.reserve(sql.size());
  std::size_t copied = 0;
  for (const auto& p : found) {
    out.append(sql, copied, p.at - copied);
    out += '?';
    if (!in_order) {
      out.append(sql, p.at + 1, p.length - 1);  // the number
    }
    copied = p.at + p.length;
  }
  out.append(sql, copied, std::string::npos);
  return out;
}

namespace {

class sqlite_statement {
 public:
  sqlite_statement(sqlite3* handle, const std::string& postgres_sql) : handle_(handle) {
    const std::string sql = sqlite_placeholders(postgres_sql);
    if (sqlite3_prepare_v2(handle, sql.c_str(), static_cast<int>(sql.size()), &statement_,
                           nullptr) != SQLITE_OK) {
      throw database_error(std::string("sqlite: ") + sqlite3_errmsg(handle) + " in: " + sql);
    }
  }
  ~sqlite_statement() { sqlite3_finalize(statement_); }
  sqlite_statement(const sqlite_statement&) = delete;
  sqlite_statement& operator=(const sqlite_statement&) = delete;

  // Binds `$1`… by index (`?` or `?N`, see sqlite_placeholders), so a parameter may appear
  // several times or out of order.
  void bind(const row& params) {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
    if (params.size() > static_cast<std::size_t>(sqlite3_bind_parameter_count(statement_))) {
      throw database_error("sqlite: the statement has no parameter $" +
                           std::to_string(params.size()));
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int index = static_cast<int>(i + 1);
      const auto& param = params[i];
      int rc = SQLITE_OK;
      if (std::holds_alternative<std::monostate>(param)) {
        rc = sqlite3_bind_null(statement_, index);
      } else if (const auto* integer = std::get_if<std::int64_t>(&param)) {
        rc = sqlite3_bind_int64(statement_, index, static_cast<sqlite3_int64>(*integer));
      } else if (const auto* real = std::get_if<double>(&param)) {
        rc = sqlite3_bind_double(statement_, index, *real);
      } else {
        const auto& text = std::get<std::string>(param);
        rc = sqlite3_bind_text(statement_, index, text.data(), static_cast<int>(text.size()),
                               SQLITE_TRANSIENT);
      }
      check(rc);
    }
  }

  result step_all() {
    result out;
    const int columns = sqlite3_column_count(statement_);
    for (int c = 0; c < columns; ++c) {
      out.columns.emplace_back(sqlite3_column_name(statement_, c));
    }
    for (;;) {
      const int rc = sqlite3_step(statement_);
      if (rc == SQLITE_DONE) {
        break;
      }
      if (rc != SQLITE_ROW) {
        check(rc);
      }
      row values;
      values.reserve(columns);
      for (int c = 0; c < columns; ++c) {
        switch (sqlite3_column_type(statement_, c)) {
          case SQLITE_NULL:
            values.emplace_back(std::monostate{});
            break;
          case SQLITE_INTEGER:
            values.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(statement_, c)));
            break;
          case SQLITE_FLOAT:
            values.emplace_back(sqlite3_column_double(statement_, c));
            break;
          default: {
            const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement_, c));
            values.emplace_back(std::string(text, sqlite3_column_bytes(statement_, c)));
          }
        }
      }
      out.rows.push_back(std::move(values));
    }
    out.affected_rows = columns == 0 ? sqlite3_changes64(handle_) : 0;
    return out;
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) {
      throw database_error(std::string("sqlite: ") + sqlite3_errmsg(handle_));
    }
  }

  sqlite3* handle_;
  sqlite3_stmt* statement_ = nullptr;
};

class sqlite_connection final : public connection {
 public:
  explicit sqlite_connection(const std::string& path) {
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path.c_str(), &handle_, flags, nullptr) != SQLITE_OK) {
      std::string why = handle_ ? sqlite3_errmsg(handle_) : "out of memory";
      sqlite3_close(handle_);
      throw database_error("sqlite: cannot open " + path + ": " + why);
    }
    sqlite3_busy_timeout(handle_, 10000);
    if (path != ":memory:") {
      run({"PRAGMA journal_mode=WAL", {}});
      run({"PRAGMA synchronous=NORMAL", {}});
    }
  }
  ~sqlite_connection() override { sqlite3_close(handle_); }

  result run(const statement& statement) override {
    sqlite_statement prepared(handle_, statement.sql);
    prepared.bind(statement.params);
    return prepared.step_all();
  }

  std::int64_t run_many(const std::string& sql, const std::vector<row>& rows) override {
    sqlite_statement prepared(handle_, sql);
    std::int64_t affected = 0;
    for (const auto& params : rows) {
      prepared.bind(params);
      affected += prepared.step_all().affected_rows;
    }
    return affected;
  }

 private:
  sqlite3* handle_ = nullptr;
};

}  // namespace

std::unique_ptr<connection> open_sqlite(const std::string& path) {
  return std::make_unique<sqlite_connection>(path);
}

}  // namespace corvo::samples::db::detail
