// PostgreSQL connections through libpq: parameters sent as text (the server infers their
// types from the statement), results read in text format and converted by column type.
#include <libpq-fe.h>

#include <charconv>
#include <cstdlib>
#include <memory>
#include <string>

#include "db/connection.hpp"

namespace corvo::samples::db::detail {
namespace {

// Type OIDs from pg_type.h (stable across versions).
constexpr Oid bool_oid = 16;
constexpr Oid int8_oid = 20;
constexpr Oid int2_oid = 21;
constexpr Oid int4_oid = 23;
constexpr Oid float4_oid = 700;
constexpr Oid float8_oid = 701;

using result_ptr = std::unique_ptr<PGresult, decltype(&PQclear)>;

// The parameters as libpq wants them: text values (or null pointers for NULL).
class text_params {
 public:
  explicit text_params(const row& params) {
    texts_.reserve(params.size());
    for (const auto& param : params) {
      if (std::holds_alternative<std::monostate>(param)) {
        texts_.emplace_back();
        nulls_.push_back(true);
      } else if (const auto* integer = std::get_if<std::int64_t>(&param)) {
        texts_.push_back(std::to_string(*integer));
        nulls_.push_back(false);
      } else if (const auto* real = std::get_if<double>(&param)) {
        char buffer[64];
        auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, *real);
        texts_.emplace_back(buffer, end);
        nulls_.push_back(false);
      } else {
        texts_.push_back(std::get<std::string>(param));
        nulls_.push_back(false);
      }
    }
    for (std::size_t i = 0; i < texts_.size(); ++i) {
      pointers_.push_back(nulls_[i] ? nullptr : texts_[i].c_str());
    }
  }
  int count() const { return static_cast<int>(pointers_.size()); }
  const char* const* values() const { return pointers_.data(); }

 private:
  std::vector<std::string> texts_;
  std::vector<bool> nulls_;
  std::vector<const char*> pointers_;
};

value convert(const PGresult* res, int r, int c) {
  if (PQgetisnull(res, r, c)) {
    return std::monostate{};
  }
  const char* text = PQgetvalue(res, r, c);
  switch (PQftype(res, c)) {
    case int8_oid:
    case int4_oid:
    case int2_oid:
      return static_cast<std::int64_t>(std::strtoll(text, nullptr, 10));
    case float4_oid:
    case float8_oid:
      return std::strtod(text, nullptr);
    case bool_oid:
      return static_cast<std::int64_t>(text[0] == 't' ? 1 : 0);
    default:
      return std::string(text, PQgetlength(res, r, c));
  }
}

class postgres_connection final : public connection {
 public:
  explicit postgres_connection(const std::string& url) : handle_(PQconnectdb(url.c_str())) {
    if (handle_ == nullptr || PQstatus(handle_) != CONNECTION_OK) {
      std::string why = handle_ ? PQerrorMessage(handle_) : "out of memory";
      PQfinish(handle_);
      throw database_error("postgresql: cannot connect: " + why);
    }
    // Notices (e.g. "relation already exists, skipping") are not errors: keep them quiet.
    PQsetNoticeProcessor(
        handle_, [](void*, const char*) {}, nullptr);
  }
  ~postgres_connection() override { PQfinish(handle_); }

  result run(const statement& statement) override {
    text_params params(statement.params);
    result_ptr res(PQexecParams(handle_, statement.sql.c_str(), params.count(), nullptr,
                                params.values(), nullptr, nullptr, 0),
                   &PQclear);
    return collect(res.get(), statement.sql);
  }

  std::int64_t run_many(const std::string& sql, const std::vector<row>& rows) override {
    if (rows.empty()) {
      return 0;
    }
    result_ptr prepared(PQprepare(handle_, "", sql.c_str(), 0, nullptr), &PQclear);
    check(prepared.get(), sql);
    std::int64_t affected = 0;
    for (const auto& row_params : rows) {
      text_params params(row_params);
      result_ptr res(
          PQexecPrepared(handle_, "", params.count(), params.values(), nullptr, nullptr, 0),
          &PQclear);
      affected += collect(res.get(), sql).affected_rows;
    }
    return affected;
  }

  void recover() override {
    if (PQstatus(handle_) != CONNECTION_OK) {
      PQreset(handle_);
    } else if (PQtransactionStatus(handle_) == PQTRANS_INERROR ||
               PQtransactionStatus(handle_) == PQTRANS_INTRANS) {
      result_ptr res(PQexec(handle_, "ROLLBACK"), &PQclear);
    }
  }

 private:
  void check(const PGresult* res, const std::string& sql) {
    const auto status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      const char* message = res ? PQresultErrorMessage(res) : PQerrorMessage(handle_);
      throw database_error(std::string("postgresql: ") + message + " in: " + sql);
    }
  }

  result collect(const PGresult* res, const std::string& sql) {
    check(res, sql);
    result out;
    const int columns = PQnfields(res);
    for (int c = 0; c < columns; ++c) {
      out.columns.emplace_back(PQfname(res, c));
    }
    const int rows = PQntuples(res);
    out.rows.reserve(rows);
    for (int r = 0; r < rows; ++r) {
      row values;
      values.reserve(columns);
      for (int c = 0; c < columns; ++c) {
        values.push_back(convert(res, r, c));
      }
      out.rows.push_back(std::move(values));
    }
    const char* tuples = PQcmdTuples(const_cast<PGresult*>(res));
    out.affected_rows = (tuples && *tuples) ? std::strtoll(tuples, nullptr, 10) : 0;
    return out;
  }

  PGconn* handle_;
};

}  // namespace

std::unique_ptr<connection> open_postgres(const std::string& url) {
  return std::make_unique<postgres_connection>(url);
}

}  // namespace corvo::samples::db::detail
