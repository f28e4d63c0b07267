#include "support/redis_server.hpp"

#include <fstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "support/free_port.hpp"

namespace corvo::test {
namespace {

using namespace std::chrono_literals;

constexpr int port_race_retries = 3;
constexpr auto graceful_stop_timeout = 15s;  // redis waits up to 10 s for lagging replicas

// A config value in double quotes, so paths with spaces survive.
std::string quoted(const std::string& value) {
  std::string text = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') {
      text += '\\';
    }
    text += c;
  }
  text += '"';
  return text;
}

std::string trim_trailing_newlines(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  return text;
}

}  // namespace

redis_server::redis_server(redis_server_options options)
    : options_(std::move(options)), dir_(std::make_unique<temp_dir>(options_.tag)) {
  if (options_.tls) {
    make_certificates();
  }
  if (options_.port) {
    port_ = *options_.port;
  } else {
    port_ = options_.cluster_enabled ? free_cluster_port() : free_port();
  }
  write_config();
  launch();
  if (options_.wait_until_ready) {
    wait_ready();
  }
}

redis_server::~redis_server() {
  // The process must be gone before its dir is removed.
  process_.reset();
}

const std::filesystem::path& redis_server::dir() const noexcept {
  return dir_->path();
}
std::filesystem::path redis_server::config_path() const {
  return dir() / "redis.conf";
}
std::filesystem::path redis_server::log_path() const {
  return dir() / "redis.log";
}

std::filesystem::path redis_server::ca_cert_path() const {
  return options_.tls ? dir() / "ca.crt" : std::filesystem::path{};
}
std::filesystem::path redis_server::client_cert_path() const {
  return options_.tls ? dir() / "client.crt" : std::filesystem::path{};
}
std::filesystem::path redis_server::client_key_path() const {
  return options_.tls ? dir() / "client.key" : std::filesystem::path{};
}

std::string redis_server::address() const {
  return host_ + ":" + std::to_string(port_);
}

std::string redis_server::url() const {
  std::string credentials;
  if (options_.acl_user) {
    credentials = options_.acl_user->name + ":" + options_.acl_user->password + "@";
  } else if (options_.password) {
    credentials = ":" + *options_.password + "@";
  }
  return (options_.tls ? "rediss://" : "redis://") + credentials + address();
}

pid_t redis_server::pid() const noexcept {
  return process_ ? process_->pid() : -1;
}

bool redis_server::running() {
  return process_ && process_->running();
}

void redis_server::kill() {
  if (process_) {
    process_->kill(SIGKILL);
    process_->wait();
  }
}

void redis_server::stop() {
  if (process_) {
    process_->terminate_and_wait(graceful_stop_timeout);
  }
}

void redis_server::restart() {
  stop();
  start();
  if (!await_ping(20s)) {
    fail("did not come back on port " + std::to_string(port_) + " after restart");
  }
}

void redis_server::make_certificates() const {
  // EC keys: generated in milliseconds, unlike RSA. The server certificate names 127.0.0.1
  // and localhost so clients can verify the host, not just the chain.
  const std::vector<std::string> ec_key = {"-newkey", "ec", "-pkeyopt",
                                           "ec_paramgen_curve:prime256v1", "-nodes"};
  auto with = [](std::vector<std::string> head, const std::vector<std::string>& tail) {
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  };
  run_command_checked(
      with({"openssl", "req", "-x509", "-new", "-days", "2", "-subj", "/CN=corvo test CA",
            "-keyout", "ca.key", "-out", "ca.crt", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign"},
           ec_key),
      30s, dir());
  {
    std::ofstream server_ext(dir() / "server.ext");
    server_ext << "basicConstraints=CA:FALSE\n"
               << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
               << "extendedKeyUsage=serverAuth\n";
    std::ofstream client_ext(dir() / "client.ext");
    client_ext << "basicConstraints=CA:FALSE\n"
               << "extendedKeyUsage=clientAuth\n";
  }
  for (const std::string name : {"server", "client"}) {
    run_command_checked(with({"openssl", "req", "-new", "-subj", "/CN=corvo test " + name,
                              "-keyout", name + ".key", "-out", name + ".csr"},
                             ec_key),
                        30s, dir());
    run_command_checked(
        {"openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "2", "-out", name + ".crt", "-extfile", name + ".ext"},
        30s, dir());
  }
}

void redis_server::write_config() const {
  std::ofstream config(config_path(), std::ios::trunc);
  const auto path = [](const std::filesystem::path& p) { return quoted(p.string()); };
  config << "bind 127.0.0.1\n"
         << "daemonize no\n"
         << "dir " << path(dir()) << "\n"
         << "logfile " << path(log_path()) << "\n";
  if (options_.tls) {
    config << "port 0\n"
           << "tls-port " << port_ << "\n"
           << "tls-cert-file " << path(dir() / "server.crt") << "\n"
           << "tls-key-file " << path(dir() / "server.key") << "\n"
           << "tls-ca-cert-file " << path(ca_cert_path()) << "\n"
           << "tls-auth-clients " << (options_.tls_auth_clients ? "yes" : "no") << "\n";
  } else {
    config << "port " << port_ << "\n";
  }
  if (!options_.rdb_snapshots) {
    config << "save \"\"\n";
  }
  config << "appendonly " << (options_.append_only ? "yes" : "no") << "\n"
         << "appendfsync everysec\n";
  if (options_.password) {
    config << "requirepass " << quoted(*options_.password) << "\n";
  }
  if (options_.acl_user) {
    const auto& user = *options_.acl_user;
    config << "user " << user.name << " on >" << user.password << " " << user.rules << "\n";
  }
  if (options_.cluster_enabled) {
    config << "cluster-enabled yes\n"
           << "cluster-config-file nodes.conf\n"
           << "cluster-node-timeout " << options_.cluster_node_timeout_ms << "\n";
  }
  for (const auto& line : options_.extra_config) {
    config << line << "\n";
  }
  if (!config.flush()) {
    throw std::runtime_error("redis_server: cannot write " + config_path().string());
  }
}

void redis_server::start() {
  if (running()) {
    throw std::logic_error("redis_server::start: the server on port " + std::to_string(port_) +
                           " is still running");
  }
  launch();
}

void redis_server::launch() {
  if (std::this_thread::get_id() != owner_) {
    // PR_SET_PDEATHSIG ties the child to the forking thread: it would be SIGKILLed when a
    // helper thread ends, and the server would "not come back".
    throw std::logic_error("redis_server: start the server on the thread that constructed it");
  }
  process_.reset();
  process_.emplace(std::vector<std::string>{"redis-server", config_path().string()}, dir(),
                   log_path());
}

std::vector<std::string> redis_server::cli_connection_flags() const {
  std::vector<std::string> flags = {"-h", host_, "-p", std::to_string(port_)};
  if (options_.tls) {
    flags.insert(flags.end(), {"--tls", "--cacert", ca_cert_path().string()});
    if (options_.tls_auth_clients) {
      flags.insert(flags.end(),
                   {"--cert", client_cert_path().string(), "--key", client_key_path().string()});
    }
  }
  return flags;
}

std::vector<std::string> redis_server::cli_auth_flags() const {
  if (options_.acl_user) {
    return {"--user", options_.acl_user->name, "--pass", options_.acl_user->password,
            "--no-auth-warning"};
  }
  if (options_.password) {
    return {"-a", *options_.password, "--no-auth-warning"};
  }
  return {};
}

command_result redis_server::cli_unauthenticated(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"redis-cli"};
  const auto connection = cli_connection_flags();
  argv.insert(argv.end(), connection.begin(), connection.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, 30s);
}

command_result redis_server::cli_result(const std::vector<std::string>& args) {
  auto with_auth = cli_auth_flags();
  with_auth.insert(with_auth.end(), args.begin(), args.end());
  return cli_unauthenticated(with_auth);
}

std::string redis_server::cli_argv(const std::vector<std::string>& args) {
  auto result = cli_result(args);
  if (result.timed_out) {
    throw std::runtime_error("redis-cli against " + address() + " timed out");
  }
  return trim_trailing_newlines(std::move(result.out));
}

bool redis_server::await_ping(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running()) {
      return false;
    }
    const auto reply = cli_result({"PING"});
    if (trim_trailing_newlines(reply.out) == "PONG") {
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  if (!running()) {
    return false;
  }
  fail("did not answer PING within " + std::to_string(timeout.count()) + " ms");
}

void redis_server::wait_ready(std::chrono::milliseconds timeout) {
  for (int attempt = 0;; ++attempt) {
    if (await_ping(timeout)) {
      return;
    }
    // The server exited. A parallel test may have taken the port between the probe and
    // the bind: start again on a new port.
    const bool port_race =
        tail_of_file(log_path(), 50).find("Address already in use") != std::string::npos;
    if (!port_race || options_.port || attempt + 1 >= port_race_retries) {
      fail("exited during start-up");
    }
    port_ = options_.cluster_enabled ? free_cluster_port() : free_port();
    std::error_code ignored;
    std::filesystem::remove(log_path(), ignored);  // so the next failure is judged on its own
    write_config();
    launch();
  }
}

void redis_server::fail(const std::string& why) {
  throw std::runtime_error("redis-server on port " + std::to_string(port_) + " " + why +
                           "; last lines of " + log_path().string() + ":\n" +
                           tail_of_file(log_path()));
}

}  // namespace corvo::test
