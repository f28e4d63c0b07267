// samples/common/db against both backends (SQLite in a temp file, a throwaway PostgreSQL):
// values round-trip with their types, parameters bind by number, a batch is one
// transaction (idempotent with ON CONFLICT DO NOTHING, all-or-nothing on error), a failed
// statement leaves the database usable, and statements run off the io_context's thread.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>
#include <db/connection.hpp>
#include <db/database.hpp>
#include <thread>

#include "support/postgres_server.hpp"
#include "support/run_coroutine.hpp"
#include "support/temp_dir.hpp"

namespace asio = boost::asio;
namespace db = corvo::samples::db;

namespace {

struct backend_case {
  std::string name;
  std::string url;
};

// A fresh database per case for each backend.
std::vector<backend_case> backends(corvo::test::temp_dir& dir, const std::string& tag) {
  return {{"sqlite", "sqlite:" + (dir.path() / (tag + ".db")).string()},
          {"postgresql", corvo::test::shared_postgres_server().create_database(tag)}};
}

asio::awaitable<void> create_table(db::database& store) {
  co_await store.execute(
      "CREATE TABLE items (id TEXT PRIMARY KEY, n BIGINT NOT NULL, x DOUBLE PRECISION, note "
      "TEXT)");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sample_db)

BOOST_AUTO_TEST_CASE(values_round_trip_with_their_types) {
  corvo::test::temp_dir dir("sample-db");
  for (const auto& backend : backends(dir, "round_trip")) {
    BOOST_TEST_CONTEXT(backend.name) {
      db::database store({.url = backend.url});
      BOOST_TEST((store.kind() == db::backend_of(backend.url)));
      asio::io_context context;
      auto rows = corvo::test::run(context, [&]() -> asio::awaitable<db::result> {
        co_await create_table(store);
        // $2 before $1, and $1 twice: parameters bind by number.
        // Named first: a braced temporary inside co_await is destroyed twice by GCC 12.
        db::row params = {std::int64_t{-9000000000}, std::string("a"), 2.5,
                          std::string("it's \"quoted\"")};
        const auto inserted = co_await store.execute(
            "INSERT INTO items (id, n, x, note) VALUES ($2, $1, $3, $4), ($2 || '-copy', $1, "
            "$3, NULL)",
            params);
        BOOST_TEST(inserted == 2);
        co_return co_await store.query("SELECT id, n, x, note FROM items ORDER BY id");
      }());
      BOOST_TEST(rows.columns == (std::vector<std::string>{"id", "n", "x", "note"}),
                 boost::test_tools::per_element());
      BOOST_REQUIRE_EQUAL(rows.rows.size(), 2u);
      BOOST_TEST(std::get<std::string>(rows.rows[0][0]) == "a");
      BOOST_TEST(std::get<std::int64_t>(rows.rows[0][1]) == -9000000000);
      BOOST_TEST(std::get<double>(rows.rows[0][2]) == 2.5);
      BOOST_TEST(std::get<std::string>(rows.rows[0][3]) == "it's \"quoted\"");
      BOOST_TEST(std::get<std::string>(rows.rows[1][0]) == "a-copy");
      BOOST_TEST(std::holds_alternative<std::monostate>(rows.rows[1][3]));
    }
  }
}

// SQLite: `$1`…`$K` in order, each once, become anonymous `?` (SQLite looks each `?N` up by a
// linear search when it prepares a statement); anything else keeps its number.
BOOST_AUTO_TEST_CASE(sqlite_placeholders_are_anonymous_only_in_order) {
  using corvo::samples::db::detail::sqlite_placeholders;
  BOOST_TEST(sqlite_placeholders("INSERT INTO t VALUES ($1,$2),($3,$4)") ==
             "INSERT INTO t VALUES (?,?),(?,?)");
  BOOST_TEST(sqlite_placeholders("SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11") ==
             "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?");
  BOOST_TEST(sqlite_placeholders("SELECT $2, $1") == "SELECT ?2, ?1");
  BOOST_TEST(sqlite_placeholders("SELECT $1, $2, $1") == "SELECT ?1, ?2, ?1");
  BOOST_TEST(sqlite_placeholders("SELECT $1, $3") == "SELECT ?1, ?3");
  BOOST_TEST(sqlite_placeholders("SELECT $10") == "SELECT ?10");
  // Quoted text and a `$` without a number stay as they are.
  BOOST_TEST(sqlite_placeholders("SELECT '$2', \"$1\", $1, 'it''s $3', $0") ==
             "SELECT '$2', \"$1\", ?, 'it''s $3', $0");
  BOOST_TEST(sqlite_placeholders("SELECT 1") == "SELECT 1");
}

// A generated multi-row INSERT ($1…$36 in order, two-digit numbers included) binds every
// value to its own row and column on both backends.
BOOST_AUTO_TEST_CASE(a_multi_row_insert_binds_each_value_in_place) {
  corvo::test::temp_dir dir("sample-db");
  for (const auto& backend : backends(dir, "multi_row")) {
    BOOST_TEST_CONTEXT(backend.name) {
      db::database store({.url = backend.url});
      asio::io_context context;
      auto rows = corvo::test::run(context, [&]() -> asio::awaitable<db::result> {
        co_await create_table(store);
        std::string sql = "INSERT INTO items (id, n, note) VALUES ";
        db::row params;
        for (int r = 0; r < 12; ++r) {
          const int first = r * 3 + 1;
          sql += (r == 0 ? "(" : ",(") + std::string("$") + std::to_string(first) + ",$" +
                 std::to_string(first + 1) + ",$" + std::to_string(first + 2) + ")";
          params.emplace_back("row-" + std::to_string(100 + r));
          params.emplace_back(std::int64_t{r * 10});
          params.emplace_back("note-" + std::to_string(r));
        }
        const auto inserted = co_await store.execute(sql, params);
        BOOST_TEST(inserted == 12);
        co_return co_await store.query("SELECT id, n, note FROM items ORDER BY id");
      }());
      BOOST_REQUIRE_EQUAL(rows.rows.size(), 12u);
      for (int r = 0; r < 12; ++r) {
        const auto& row = rows.rows[static_cast<std::size_t>(r)];
        BOOST_TEST(std::get<std::string>(row[0]) == "row-" + std::to_string(100 + r));
        BOOST_TEST(std::get<std::int64_t>(row[1]) == r * 10);
        BOOST_TEST(std::get<std::string>(row[2]) == "note-" + std::to_string(r));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(a_batch_is_idempotent_and_all_or_nothing) {
  corvo::test::temp_dir dir("sample-db");
  for (const auto& backend : backends(dir, "batch")) {
    BOOST_TEST_CONTEXT(backend.name) {
      db::database store({.url = backend.url});
      asio::io_context context;
      corvo::test::run(context, [&]() -> asio::awaitable<void> {
        co_await create_table(store);
        const std::string insert =
            "INSERT INTO items (id, n) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";
        std::vector<db::row> first;
        for (std::int64_t i = 0; i < 1000; ++i) {
          first.push_back({std::string("id-") + std::to_string(i), i});
        }
        BOOST_TEST(co_await store.execute_batch(insert, first) == 1000);
        // Replaying an overlapping batch adds only the new rows.
        std::vector<db::row> second;
        for (std::int64_t i = 900; i < 1100; ++i) {
          second.push_back({std::string("id-") + std::to_string(i), i});
        }
        BOOST_TEST(co_await store.execute_batch(insert, second) == 100);
        // A batch with one bad row (n NOT NULL) applies none of its rows and throws.
        std::vector<db::row> broken = {{std::string("new-1"), std::int64_t{1}},
                                       {std::string("new-2"), std::monostate{}}};
        bool threw = false;
        try {
          co_await store.execute_batch(insert, broken);
        } catch (const db::database_error&) {
          threw = true;
        }
        BOOST_TEST(threw);
        auto count = co_await store.query("SELECT COUNT(*), CAST(SUM(n) AS BIGINT) FROM items");
        BOOST_TEST(std::get<std::int64_t>(count.rows.at(0).at(0)) == 1100);
        BOOST_TEST(std::get<std::int64_t>(count.rows.at(0).at(1)) == 1099 * 1100 / 2);
      }());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_failed_statement_leaves_the_database_usable) {
  corvo::test::temp_dir dir("sample-db");
  for (const auto& backend : backends(dir, "failure")) {
    BOOST_TEST_CONTEXT(backend.name) {
      db::database store({.url = backend.url, .threads = 2});
      asio::io_context context;
      corvo::test::run(context, [&]() -> asio::awaitable<void> {
        co_await create_table(store);
        std::string message;
        try {
          co_await store.query("SELECT * FROM no_such_table");
        } catch (const db::database_error& e) {
          message = e.what();
        }
        BOOST_TEST(message.find("no_such_table") != std::string::npos);
        // A transaction whose second statement fails leaves nothing behind.
        std::vector<db::statement> statements = {
            {"INSERT INTO items (id, n) VALUES ($1, $2)", {std::string("t"), std::int64_t{1}}},
            {"INSERT INTO items (id, n) VALUES ($1, $2)", {std::string("t"), std::int64_t{2}}}};
        bool threw = false;
        try {
          co_await store.transaction(statements);
        } catch (const db::database_error&) {
          threw = true;
        }
        BOOST_TEST(threw);
        // Every pooled connection is usable afterwards (no transaction left open).
        for (int i = 0; i < 4; ++i) {
          db::row params = {std::string("u") + std::to_string(i), std::int64_t{i}};
          BOOST_TEST(co_await store.execute("INSERT INTO items (id, n) VALUES ($1, $2)", params) ==
                     1);
        }
        std::vector<db::statement> update = {{"UPDATE items SET n = n + 10 WHERE id LIKE 'u%'", {}},
                                             {"SELECT COUNT(*) FROM items WHERE n >= 10", {}}};
        auto results = co_await store.transaction(update);
        BOOST_TEST(results.at(0).affected_rows == 4);
        BOOST_TEST(std::get<std::int64_t>(results.at(1).rows.at(0).at(0)) == 4);
      }());
    }
  }
}

BOOST_AUTO_TEST_CASE(statements_run_off_the_loop_thread) {
  corvo::test::temp_dir dir("sample-db");
  for (const auto& backend : backends(dir, "off_loop")) {
    BOOST_TEST_CONTEXT(backend.name) {
      db::database store({.url = backend.url});
      asio::io_context context;
      const auto loop_thread = std::this_thread::get_id();
      // A slow statement (PostgreSQL sleeps; SQLite counts to a million) while a timer
      // on the same loop fires: it can only fire if the loop is not blocked.
      const std::string slow =
          store.kind() == db::backend::postgresql
              ? "SELECT pg_sleep(0.5)"
              : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
                "1000000) SELECT COUNT(*) FROM c";
      bool statement_done = false;
      bool timer_fired_first = false;
      bool resumed_on_loop = false;
      asio::co_spawn(
          context,
          [&]() -> asio::awaitable<void> {
            auto executor = co_await asio::this_coro::executor;
            asio::steady_timer timer(executor, std::chrono::milliseconds(5));
            co_await timer.async_wait(asio::use_awaitable);
            timer_fired_first = !statement_done;
          },
          asio::detached);
      corvo::test::run(context, [&]() -> asio::awaitable<void> {
        co_await store.query(slow);
        statement_done = true;
        resumed_on_loop = std::this_thread::get_id() == loop_thread;
      }());
      BOOST_TEST(timer_fired_first);
      BOOST_TEST(resumed_on_loop);
    }
  }
}

BOOST_AUTO_TEST_CASE(an_unreachable_postgresql_is_an_error_not_a_hang) {
  db::database store({.url = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=5"});
  asio::io_context context;
  BOOST_CHECK_THROW(corvo::test::run(context, store.ping()), db::database_error);
}

BOOST_AUTO_TEST_SUITE_END()
