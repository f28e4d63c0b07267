// The standalone redis-server fixture (and the child-process helpers under it) does what
// integration tests rely on: a real server that answers, keeps AOF data across a restart,
// enforces passwords, ACL users and TLS, and is really gone when killed or destroyed.

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "support/child_process.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using corvo::test::command_result;
using corvo::test::process_exists;
using corvo::test::redis_server;
using corvo::test::redis_server_options;

namespace {

std::string everything(const command_result& result) {
  return result.out + result.err;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(child_process_helpers)

BOOST_AUTO_TEST_CASE(run_command_captures_stdout_stderr_and_exit_code) {
  const auto result = corvo::test::run_command({"sh", "-c", "echo out; echo err >&2; exit 3"});
  BOOST_TEST(result.out == "out\n");
  BOOST_TEST(result.err == "err\n");
  BOOST_TEST(result.exit_code == 3);
  BOOST_TEST(!result.timed_out);
}

BOOST_AUTO_TEST_CASE(run_command_kills_a_command_past_its_timeout) {
  const auto result = corvo::test::run_command({"sleep", "30"}, 200ms);
  BOOST_TEST(result.timed_out);
  BOOST_TEST(result.exit_code == 128 + SIGKILL);
}

BOOST_AUTO_TEST_CASE(starting_a_missing_program_throws) {
  BOOST_CHECK_THROW(corvo::test::run_command({"corvo-no-such-program"}), std::system_error);
}

BOOST_AUTO_TEST_CASE(destroying_a_child_process_kills_and_reaps_it) {
  pid_t pid = -1;
  {
    corvo::test::child_process sleeper({"sleep", "30"}, {}, "/dev/null");
    pid = sleeper.pid();
    BOOST_TEST(sleeper.running());
  }
  BOOST_TEST(!process_exists(pid));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(redis_server_fixture)

BOOST_AUTO_TEST_CASE(standalone_server_answers_ping_and_stores_values) {
  redis_server server;
  BOOST_TEST(server.running());
  BOOST_TEST(server.cli("PING") == "PONG");
  BOOST_TEST(server.cli("SET", "greeting", "hello") == "OK");
  BOOST_TEST(server.cli("GET", "greeting") == "hello");
  BOOST_TEST(server.url() == "redis://127.0.0.1:" + std::to_string(server.port()));
  BOOST_TEST(server.cli("CONFIG", "GET", "save") == "save");  // save ""
}

BOOST_AUTO_TEST_CASE(aof_data_survives_restart) {
  redis_server_options options;
  options.append_only = true;
  redis_server server{options};
  BOOST_TEST(server.cli("CONFIG", "GET", "appendonly") == "appendonly\nyes");
  BOOST_TEST(server.cli("SET", "durable", "42") == "OK");
  BOOST_TEST(server.cli("RPUSH", "list", "a", "b", "c") == "3");
  const auto port = server.port();
  const auto first_pid = server.pid();

  server.restart();

  BOOST_TEST(server.port() == port);
  BOOST_TEST(server.pid() != first_pid);
  BOOST_TEST(!process_exists(first_pid));
  BOOST_TEST(server.cli("GET", "durable") == "42");
  BOOST_TEST(server.cli("LRANGE", "list", "0", "-1") == "a\nb\nc");
}

BOOST_AUTO_TEST_CASE(without_aof_data_is_gone_after_restart) {
  redis_server server;
  BOOST_TEST(server.cli("SET", "volatile", "1") == "OK");
  server.restart();
  BOOST_TEST(server.cli("EXISTS", "volatile") == "0");
}

BOOST_AUTO_TEST_CASE(requirepass_rejects_clients_without_the_password) {
  redis_server_options options;
  options.password = "s3cret";
  redis_server server{options};

  BOOST_TEST(contains(server.cli_unauthenticated({"PING"}).out, "NOAUTH"));
  BOOST_TEST(
      contains(everything(server.cli_unauthenticated({"-a", "wrong", "--no-auth-warning", "PING"})),
               "WRONGPASS"));
  BOOST_TEST(server.cli("PING") == "PONG");
  BOOST_TEST(server.url() == "redis://:s3cret@127.0.0.1:" + std::to_string(server.port()));
}

BOOST_AUTO_TEST_CASE(acl_user_authenticates_and_wrong_password_is_rejected) {
  redis_server_options options;
  options.acl_user = corvo::test::redis_acl_user{"alice", "wonderland", "~app:* +@all"};
  redis_server server{options};

  BOOST_TEST(server.cli("ACL", "WHOAMI") == "alice");
  BOOST_TEST(server.cli("SET", "app:x", "1") == "OK");
  BOOST_TEST(contains(server.cli("SET", "other:x", "1"), "NOPERM"));
  BOOST_TEST(contains(everything(server.cli_unauthenticated(
                          {"--user", "alice", "--pass", "wrong", "--no-auth-warning", "PING"})),
                      "WRONGPASS"));
  BOOST_TEST(server.url() == "redis://alice:wonderland@127.0.0.1:" + std::to_string(server.port()));
}

BOOST_AUTO_TEST_CASE(tls_server_answers_tls_clients_only) {
  redis_server_options options;
  options.tls = true;
  redis_server server{options};

  BOOST_TEST(std::filesystem::exists(server.ca_cert_path()));
  BOOST_TEST(server.url() == "rediss://127.0.0.1:" + std::to_string(server.port()));
  BOOST_TEST(server.cli("PING") == "PONG");  // --tls --cacert: the chain verifies

  const auto plain = corvo::test::run_command(
      {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(server.port()), "PING"}, 30s);
  BOOST_TEST(!plain.timed_out);
  BOOST_TEST(plain.exit_code != 0);
  BOOST_TEST(!contains(plain.out, "PONG"));

  // A TLS client that does not trust the generated CA is refused by certificate checks.
  const auto untrusted =
      corvo::test::run_command({"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(server.port()),
                                "--tls", "--cacert", "/dev/null", "PING"},
                               30s);
  BOOST_TEST(!contains(untrusted.out, "PONG"));
}

BOOST_AUTO_TEST_CASE(tls_server_can_require_client_certificates) {
  redis_server_options options;
  options.tls = true;
  options.tls_auth_clients = true;
  redis_server server{options};

  BOOST_TEST(server.cli("PING") == "PONG");  // presents client.crt
  const auto without_certificate =
      corvo::test::run_command({"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(server.port()),
                                "--tls", "--cacert", server.ca_cert_path().string(), "PING"},
                               30s);
  BOOST_TEST(!contains(without_certificate.out, "PONG"));
}

BOOST_AUTO_TEST_CASE(killed_server_stops_answering_and_its_process_is_gone) {
  redis_server server;
  const auto pid = server.pid();
  BOOST_TEST(server.cli("PING") == "PONG");

  server.kill();

  BOOST_TEST(!server.running());
  BOOST_TEST(!process_exists(pid));
  const auto ping = server.cli_result({"PING"});
  BOOST_TEST(ping.exit_code != 0);
  BOOST_TEST(contains(ping.err, "Connection refused"));
}

BOOST_AUTO_TEST_CASE(stopped_server_can_be_restarted) {
  redis_server server;
  server.stop();
  BOOST_TEST(!server.running());
  server.restart();
  BOOST_TEST(server.cli("PING") == "PONG");
}

// The child dies with the thread that forked it (PR_SET_PDEATHSIG): a server started from a
// helper thread was SIGKILLed when that thread ended. stop() may run on a helper thread;
// start() refuses any thread but the constructing one, and a server it starts outlives the
// helper thread that stopped it.
BOOST_AUTO_TEST_CASE(server_stopped_on_a_helper_thread_is_started_on_its_own_thread) {
  redis_server_options options;
  options.append_only = true;
  redis_server server(options);
  BOOST_TEST(server.cli("SET", "k", "v") == "OK");
  std::thread([&] { server.stop(); }).join();
  BOOST_TEST(!server.running());
  bool refused = false;
  std::thread([&] {
    try {
      server.start();
    } catch (const std::logic_error&) {
      refused = true;
    }
  }).join();
  BOOST_TEST(refused);
  BOOST_TEST(!server.running());
  server.start();
  server.wait_ready();
  std::thread([] {}).join();  // another thread ending does not take the server with it
  BOOST_TEST(server.running());
  BOOST_TEST(server.cli("GET", "k") == "v");
  BOOST_CHECK_THROW(server.start(), std::logic_error);  // already running
}

BOOST_AUTO_TEST_CASE(destroying_the_fixture_ends_the_server_and_removes_its_dir) {
  auto server = std::make_unique<redis_server>();
  const auto pid = server->pid();
  const auto dir = server->dir();
  BOOST_TEST(process_exists(pid));
  BOOST_TEST(std::filesystem::exists(dir / "redis.conf"));

  server.reset();

  BOOST_TEST(!process_exists(pid));
  BOOST_TEST(!std::filesystem::exists(dir));
}

BOOST_AUTO_TEST_CASE(bad_config_fails_with_the_server_log) {
  redis_server_options options;
  options.extra_config = {"no-such-directive yes"};
  try {
    redis_server server{options};
    BOOST_FAIL("a server with a bad config started");
  } catch (const std::runtime_error& error) {
    BOOST_TEST(contains(error.what(), "no-such-directive"));
  }
}

BOOST_AUTO_TEST_SUITE_END()
