#include "support/postgres_server.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "support/free_port.hpp"

namespace corvo::test {
namespace {

using namespace std::chrono_literals;

constexpr int port_race_retries = 3;

std::filesystem::path find_bin() {
  if (const char* configured = std::getenv("CORVO_PG_BIN")) {
    return configured;
  }
  std::vector<std::filesystem::path> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    if (std::filesystem::exists(entry.path() / "bin" / "postgres")) {
      found.push_back(entry.path() / "bin");
    }
  }
  if (found.empty()) {
    throw std::runtime_error(
        "postgres_server: no /usr/lib/postgresql/*/bin/postgres (install Debian's postgresql, "
        "scripts/setup does) and CORVO_PG_BIN is not set");
  }
  // The newest major version: directory names are numbers.
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return std::stoi(a.parent_path().filename().string()) <
           std::stoi(b.parent_path().filename().string());
  });
  return found.back();
}

std::filesystem::path make_dir() {
  auto pattern = (std::filesystem::temp_directory_path() / "corvo-pg.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("postgres_server: mkdtemp failed for " + pattern);
  }
  return pattern;
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  return text;
}

}  // namespace

postgres_server::postgres_server()
    : bin_(find_bin()), dir_(make_dir()), as_root_(::geteuid() == 0) {
  try {
    if (as_root_) {
      const passwd* user = ::getpwnam("postgres");
      if (user == nullptr) {
        throw std::runtime_error("postgres_server: running as root but there is no postgres user");
      }
      if (::chown(dir_.c_str(), user->pw_uid, user->pw_gid) != 0) {
        throw std::runtime_error("postgres_server: cannot chown " + dir_.string());
      }
    }
    run_command_checked(
        as_owner({(bin_ / "initdb").string(), "-D", (dir_ / "data").string(), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"}),
        120s, dir_);
    for (int attempt = 0;; ++attempt) {
      port_ = free_port();
      launch();
      if (await_ready()) {
        break;
      }
      const bool port_race =
          tail_of_file(log_path(), 50).find("could not bind") != std::string::npos;
      if (!port_race || attempt + 1 >= port_race_retries) {
        throw std::runtime_error("postgres_server: the server did not start; last lines of " +
                                 log_path().string() + ":\n" + tail_of_file(log_path()));
      }
    }
  } catch (...) {
    process_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    throw;
  }
}

postgres_server::~postgres_server() {
  if (process_ && process_->running()) {
    process_->kill(SIGINT);  // fast shutdown: ends the sessions, checkpoints, exits
    if (!process_->wait_for(20s)) {
      process_->kill(SIGKILL);
      process_->wait();
    }
  }
  process_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::vector<std::string> postgres_server::as_owner(std::vector<std::string> argv) const {
  if (!as_root_) {
    return argv;
  }
  // setpriv execs the program itself (no intermediate process) and re-arms the parent-death
  // signal, which a change of user would otherwise clear.
  std::vector<std::string> wrapped = {"setpriv", "--reuid=postgres", "--regid=postgres",
                                      "--init-groups", "--pdeathsig=KILL"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

void postgres_server::launch() {
  process_.reset();
  process_.emplace(
      as_owner({(bin_ / "postgres").string(), "-D", (dir_ / "data").string(), "-p",
                std::to_string(port_), "-k", dir_.string(), "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=50"}),
      dir_, log_path());
}

bool postgres_server::await_ready() {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_->running()) {
      return false;
    }
    const auto probe = run_command(
        {(bin_ / "pg_isready").string(), "-q", "-h", "127.0.0.1", "-p", std::to_string(port_)},
        10s);
    if (probe.exit_code == 0) {
      return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  throw std::runtime_error("postgres_server: not ready within 60 s; last lines of " +
                           log_path().string() + ":\n" + tail_of_file(log_path()));
}

std::string postgres_server::url(const std::string& database) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

std::string postgres_server::psql(const std::string& sql, const std::string& database) {
  return trim(run_command_checked({(bin_ / "psql").string(), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                   "-tA", "-d", url(database), "-c", sql},
                                  60s));
}

std::string postgres_server::create_database(const std::string& name) {
  psql("DROP DATABASE IF EXISTS \"" + name + "\" WITH (FORCE)");
  psql("CREATE DATABASE \"" + name + "\"");
  return url(name);
}

postgres_server& shared_postgres_server() {
  static postgres_server server;
  return server;
}

}  // namespace corvo::test
