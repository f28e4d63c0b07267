#include "db/database.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <mutex>

#include "db/connection.hpp"

namespace corvo::samples::db {

namespace asio = boost::asio;

backend backend_of(std::string_view url) noexcept {
  return url.starts_with("postgresql://") || url.starts_with("postgres://") ? backend::postgresql
                                                                            : backend::sqlite;
}

namespace {

std::string sqlite_path(std::string_view url) {
  if (url.starts_with("sqlite:")) {
    url.remove_prefix(7);
  }
  return std::string(url.empty() ? ":memory:" : url);
}

std::size_t pool_size(const database_options& options) {
  if (backend_of(options.url) == backend::sqlite) {
    if (sqlite_path(options.url) == ":memory:") {
      return 1;  // every connection would open a database of its own
    }
    return options.threads == 0 ? 1 : options.threads;
  }
  return options.threads == 0 ? 4 : options.threads;
}

}  // namespace

// The pool threads and their connections. Shared with the operations in flight so that a
// finishing statement never touches a destroyed object; ~database joins the threads first.
class database::impl {
 public:
  explicit impl(const database_options& options)
      : kind_(backend_of(options.url)), url_(options.url), threads_(pool_size(options)) {}

  backend kind() const noexcept { return kind_; }
  asio::thread_pool& threads() noexcept { return threads_; }
  void join() { threads_.join(); }

  // Runs `work(connection&)` with a connection of its own (made on first use). On failure
  // the connection is given a chance to recover (a broken PostgreSQL link is reset) and kept.
  template <class Work>
  auto with_connection(Work& work) {
    auto link = take();
    try {
      auto value = work(*link);
      give_back(std::move(link));
      return value;
    } catch (...) {
      try {
        link->recover();
        give_back(std::move(link));
      } catch (...) {
        // dropped: the next statement connects afresh
      }
      throw;
    }
  }

  // BEGIN … COMMIT around `work`; ROLLBACK (and rethrow) if it throws.
  template <class Work>
  auto in_transaction(detail::connection& link, Work& work) {
    link.run({kind_ == backend::sqlite ? "BEGIN IMMEDIATE" : "BEGIN", {}});
    try {
      auto value = work(link);
      link.run({"COMMIT", {}});
      return value;
    } catch (...) {
      try {
        link.run({"ROLLBACK", {}});
      } catch (...) {
        // the transaction is gone already (e.g. the connection broke)
      }
      throw;
    }
  }

 private:
  std::unique_ptr<detail::connection> take() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        auto link = std::move(idle_.back());
        idle_.pop_back();
        return link;
      }
    }
    return kind_ == backend::sqlite ? detail::open_sqlite(sqlite_path(url_))
                                    : detail::open_postgres(url_);
  }

  void give_back(std::unique_ptr<detail::connection> link) {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(link));
  }

  backend kind_;
  std::string url_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<detail::connection>> idle_;
  asio::thread_pool threads_;
};

namespace {

// Runs `work(connection&)` on the pool and resumes the awaiting coroutine on its own
// executor with the value or the exception. The loop is kept from running out of work
// while the statement runs (the suspended coroutine alone does not count as work).
template <class T, class Work>
asio::awaitable<T> on_pool(std::shared_ptr<database::impl> self, Work work) {
  auto initiate = [self, work = std::move(work)](auto handler) mutable {
    auto loop = asio::prefer(asio::get_associated_executor(handler),
                             asio::execution::outstanding_work.tracked);
    asio::post(self->threads(), [self, work = std::move(work), handler = std::move(handler),
                                 loop = std::move(loop)]() mutable {
      std::exception_ptr failure;
      T value{};
      try {
        value = self->with_connection(work);
      } catch (...) {
        failure = std::current_exception();
      }
      asio::post(loop, [handler = std::move(handler), failure, value = std::move(value)]() mutable {
        std::move(handler)(failure, std::move(value));
      });
    });
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable),
                                          void(std::exception_ptr, T)>(std::move(initiate),
                                                                       asio::use_awaitable);
}

}  // namespace

database::database(database_options options) : impl_(std::make_shared<impl>(options)) {}

database::~database() {
  impl_->join();
}

backend database::kind() const noexcept {
  return impl_->kind();
}

asio::awaitable<result> database::query(std::string sql, row params) {
  auto work = [one = statement{std::move(sql), std::move(params)}](detail::connection& link) {
    return link.run(one);
  };
  co_return co_await on_pool<result>(impl_, std::move(work));
}

asio::awaitable<std::int64_t> database::execute(std::string sql, row params) {
  auto work = [one = statement{std::move(sql), std::move(params)}](detail::connection& link) {
    return link.run(one).affected_rows;
  };
  co_return co_await on_pool<std::int64_t>(impl_, std::move(work));
}

asio::awaitable<std::int64_t> database::execute_batch(std::string sql, std::vector<row> rows) {
  auto self = impl_;
  auto work = [self, sql = std::move(sql), rows = std::move(rows)](detail::connection& link) {
    auto all_rows = [&](detail::connection& inside) { return inside.run_many(sql, rows); };
    return self->in_transaction(link, all_rows);
  };
  co_return co_await on_pool<std::int64_t>(impl_, std::move(work));
}

asio::awaitable<std::vector<result>> database::transaction(std::vector<statement> statements) {
  auto self = impl_;
  auto work = [self, statements = std::move(statements)](detail::connection& link) {
    auto each = [&](detail::connection& inside) {
      std::vector<result> results;
      results.reserve(statements.size());
      for (const auto& one : statements) {
        results.push_back(inside.run(one));
      }
      return results;
    };
    return self->in_transaction(link, each);
  };
  co_return co_await on_pool<std::vector<result>>(impl_, std::move(work));
}

asio::awaitable<void> database::ping() {
  auto work = [](detail::connection& link) { return link.run({"SELECT 1", {}}).rows.size(); };
  co_await on_pool<std::size_t>(impl_, std::move(work));
}

}  // namespace corvo::samples::db
