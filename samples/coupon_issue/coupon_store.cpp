#include "coupon_store.hpp"

#include <stdexcept>

namespace coupon_issue {

namespace {

std::int64_t integer(const db::value& v) {
  if (const auto* n = std::get_if<std::int64_t>(&v)) {
    return *n;
  }
  if (const auto* s = std::get_if<std::string>(&v)) {
    return std::stoll(*s);
  }
  throw std::runtime_error("coupon_store: an integer column is NULL");
}

std::string text(const db::value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    return *s;
  }
  if (const auto* n = std::get_if<std::int64_t>(&v)) {
    return std::to_string(*n);
  }
  return {};
}

// "INSERT ... VALUES ($1,$2),($3,$4)..." for `rows` rows of `columns` parameters.
std::string values_list(std::size_t rows, std::size_t columns) {
  std::string out;
  std::size_t n = 1;
  for (std::size_t r = 0; r < rows; ++r) {
    out += r == 0 ? "(" : ",(";
    for (std::size_t c = 0; c < columns; ++c) {
      out += (c == 0 ? "$" : ",$") + std::to_string(n++);
    }
    out += ")";
  }
  return out;
}

constexpr std::size_t rows_per_statement = 100;  // 700 parameters: below SQLite's old 999

}  // namespace

std::vector<coupon_definition> parse_coupons(std::string_view list) {
  std::vector<coupon_definition> out;
  std::size_t start = 0;
  while (start < list.size()) {
    auto end = list.find(',', start);
    if (end == std::string_view::npos) {
      end = list.size();
    }
    const std::string item(list.substr(start, end - start));
    start = end + 1;
    if (item.empty()) {
      continue;
    }
    coupon_definition d;
    const auto first = item.find(':');
    const auto second = item.find(':', first == std::string::npos ? first : first + 1);
    const auto id = parse_id(item.substr(0, first));
    if (!id || first == std::string::npos) {
      throw std::invalid_argument("coupon definition \"" + item + "\": want ID:STOCK[:inactive]");
    }
    d.id = *id;
    const auto stock = item.substr(
        first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
    d.stock = stock == "0" ? 0 : parse_id(stock).value_or(-1);
    if (d.stock < 0) {
      throw std::invalid_argument("coupon definition \"" + item + "\": bad stock");
    }
    if (second != std::string::npos) {
      if (item.substr(second + 1) != "inactive") {
        throw std::invalid_argument("coupon definition \"" + item + "\": want ID:STOCK[:inactive]");
      }
      d.active = false;
    }
    out.push_back(d);
  }
  return out;
}

asio::awaitable<void> coupon_store::create_schema(std::vector<coupon_definition> coupons) {
  co_await db_.execute(
      "CREATE TABLE IF NOT EXISTS coupon (id BIGINT PRIMARY KEY, stock BIGINT NOT NULL, "
      "issued BIGINT NOT NULL DEFAULT 0, active BIGINT NOT NULL DEFAULT 1, "
      "CHECK (issued >= 0 AND issued <= stock))");
  co_await db_.execute(
      "CREATE TABLE IF NOT EXISTS coupon_request (request_id TEXT PRIMARY KEY, "
      "coupon_id TEXT NOT NULL, user_id TEXT NOT NULL, seq BIGINT NOT NULL, "
      "outcome TEXT NOT NULL, detail TEXT NOT NULL, decided_ms BIGINT NOT NULL)");
  co_await db_.execute(
      "CREATE TABLE IF NOT EXISTS issued_coupon (coupon_id BIGINT NOT NULL, "
      "user_id BIGINT NOT NULL, request_id TEXT NOT NULL, PRIMARY KEY (coupon_id, user_id))");
  std::vector<db::row> rows;
  for (const auto& c : coupons) {
    rows.push_back(db::row{c.id, c.stock, std::int64_t{c.active ? 1 : 0}});
  }
  if (!rows.empty()) {
    co_await db_.execute_batch(
        "INSERT INTO coupon (id, stock, issued, active) VALUES ($1, $2, 0, $3) "
        "ON CONFLICT (id) DO NOTHING",
        std::move(rows));
  }
}

asio::awaitable<void> coupon_store::load(issuer& into) {
  auto coupons = co_await db_.query("SELECT id, stock, issued, active FROM coupon");
  std::map<std::int64_t, coupon_state> states;
  for (const auto& r : coupons.rows) {
    coupon_state s;
    s.stock = integer(r.at(1));
    s.issued = integer(r.at(2));
    s.active = integer(r.at(3)) != 0;
    states[integer(r.at(0))] = std::move(s);
  }
  auto holders = co_await db_.query("SELECT coupon_id, user_id FROM issued_coupon");
  for (const auto& r : holders.rows) {
    states[integer(r.at(0))].users.insert(integer(r.at(1)));
  }
  for (auto& [id, s] : states) {
    into.put_coupon(id, std::move(s));
  }
  auto decided = co_await db_.query("SELECT request_id, outcome FROM coupon_request");
  for (const auto& r : decided.rows) {
    into.remember(text(r.at(0)), outcome_from(text(r.at(1))).value_or(outcome::system_error));
  }
}

asio::awaitable<void> coupon_store::persist(const std::vector<decision>& batch) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::vector<db::statement> statements;
  std::map<std::int64_t, std::int64_t> issued;  // coupon → issued count after the batch
  for (std::size_t at = 0; at < batch.size(); at += rows_per_statement) {
    const auto n = std::min(rows_per_statement, batch.size() - at);
    db::statement s;
    s.sql =
        "INSERT INTO coupon_request (request_id, coupon_id, user_id, seq, outcome, detail, "
        "decided_ms) VALUES " +
        values_list(n, 7) + " ON CONFLICT (request_id) DO NOTHING";
    for (std::size_t i = at; i < at + n; ++i) {
      const auto& d = batch[i];
      s.params.emplace_back(d.request.id);
      s.params.emplace_back(d.request.coupon);
      s.params.emplace_back(d.request.user);
      s.params.emplace_back(d.request.seq);
      s.params.emplace_back(std::string(to_string(d.result)));
      s.params.emplace_back(d.detail);
      s.params.emplace_back(now);
    }
    statements.push_back(std::move(s));
  }
  std::vector<const decision*> successes;
  for (const auto& d : batch) {
    if (d.result == outcome::success) {
      successes.push_back(&d);
    }
  }
  for (std::size_t at = 0; at < successes.size(); at += rows_per_statement) {
    const auto n = std::min(rows_per_statement, successes.size() - at);
    db::statement s;
    s.sql =
        "INSERT INTO issued_coupon (coupon_id, user_id, request_id) VALUES " + values_list(n, 3);
    for (std::size_t i = at; i < at + n; ++i) {
      const auto& d = *successes[i];
      const auto coupon = *parse_id(d.request.coupon);
      s.params.emplace_back(coupon);
      s.params.emplace_back(*parse_id(d.request.user));
      s.params.emplace_back(d.request.id);
      issued[coupon] = std::max(issued[coupon], d.issued_after);
    }
    statements.push_back(std::move(s));
  }
  for (const auto& [coupon, count] : issued) {
    db::statement s;
    s.sql = "UPDATE coupon SET issued = $2 WHERE id = $1";
    s.params = db::row{coupon, count};
    statements.push_back(std::move(s));
  }
  co_await db_.transaction(std::move(statements));
}

asio::awaitable<std::optional<request_status>> coupon_store::status(std::string request_id) {
  db::row params{std::move(request_id)};
  auto r = co_await db_.query(
      "SELECT request_id, coupon_id, user_id, seq, outcome, detail FROM coupon_request "
      "WHERE request_id = $1",
      std::move(params));
  if (r.rows.empty()) {
    co_return std::nullopt;
  }
  const auto& row = r.rows.front();
  request_status s;
  s.request_id = text(row.at(0));
  s.coupon_id = text(row.at(1));
  s.user_id = text(row.at(2));
  s.seq = integer(row.at(3));
  s.outcome = text(row.at(4));
  s.detail = text(row.at(5));
  co_return s;
}

asio::awaitable<std::map<std::string, std::int64_t>> coupon_store::outcome_counts() {
  auto r = co_await db_.query("SELECT outcome, COUNT(*) FROM coupon_request GROUP BY outcome");
  std::map<std::string, std::int64_t> out;
  for (auto o : all_outcomes()) {
    out[std::string(to_string(o))] = 0;
  }
  for (const auto& row : r.rows) {
    out[text(row.at(0))] = integer(row.at(1));
  }
  co_return out;
}

asio::awaitable<std::optional<coupon_definition>> coupon_store::coupon(std::int64_t id,
                                                                       std::int64_t* issued) {
  db::row params{id};
  auto r = co_await db_.query("SELECT id, stock, issued, active FROM coupon WHERE id = $1",
                              std::move(params));
  if (r.rows.empty()) {
    co_return std::nullopt;
  }
  const auto& row = r.rows.front();
  coupon_definition d;
  d.id = integer(row.at(0));
  d.stock = integer(row.at(1));
  d.active = integer(row.at(3)) != 0;
  if (issued != nullptr) {
    *issued = integer(row.at(2));
  }
  co_return d;
}

}  // namespace coupon_issue
