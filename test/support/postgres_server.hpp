#pragma once
// A throwaway PostgreSQL server for integration tests: `initdb` into a fresh directory under
// the system temp dir, then `postgres` on a free port of 127.0.0.1 with durability turned
// off (fsync=off: a test database never outlives its test). The binaries come from
// /usr/lib/postgresql/<newest>/bin (Debian's `postgresql` package) or $CORVO_PG_BIN.
//
// PostgreSQL refuses to run as root: when the test runs as root, initdb and the server run
// as the `postgres` system user (via setpriv), and the directory is owned by that user.
// The server is a child of the test process (killed if the test dies) and is stopped with
// a fast shutdown (SIGINT), then its directory removed, when the object goes away.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/child_process.hpp"

namespace corvo::test {

class postgres_server {
 public:
  /// Creates the cluster and starts the server; waits until it accepts connections. Throws
  /// `std::runtime_error` (with the tail of the server log) if it does not come up.
  postgres_server();
  /// Fast shutdown (SIGKILL after 20 s), then removes the directory.
  ~postgres_server();
  postgres_server(const postgres_server&) = delete;
  postgres_server& operator=(const postgres_server&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  /// `postgresql://postgres@127.0.0.1:PORT/DATABASE` (trust authentication, no password).
  std::string url(const std::string& database = "postgres") const;
  /// Creates a fresh database (dropping one of that name first); returns its `url()`.
  std::string create_database(const std::string& name);
  /// Runs `psql -tAc sql` against `database` and returns its output without the trailing
  /// newline; throws if psql fails.
  std::string psql(const std::string& sql, const std::string& database = "postgres");

  const std::filesystem::path& dir() const noexcept { return dir_; }
  std::filesystem::path log_path() const { return dir_ / "postgres.log"; }

 private:
  // argv run as the postgres user when this process is root.
  std::vector<std::string> as_owner(std::vector<std::string> argv) const;
  void launch();
  bool await_ready();

  std::filesystem::path bin_;
  std::filesystem::path dir_;
  bool as_root_ = false;
  std::uint16_t port_ = 0;
  std::optional<child_process> process_;
};

/// One server for the whole test executable, started on first use (Boost.Test runs the
/// cases of one executable one after another, so they share it).
postgres_server& shared_postgres_server();

}  // namespace corvo::test
