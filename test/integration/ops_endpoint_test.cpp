// The ops endpoint over real sockets, in the ops_demo process (test/programs/ops_demo.cpp):
// a scrape that promtool accepts and whose counters match the known workload exactly, the
// health routes, the token, and bad requests (malformed, oversized, too many) answered with
// 4xx while the process keeps serving.
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <support/child_process.hpp>
#include <support/temp_dir.hpp>
#include <thread>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// ops_demo started with `args`; its port once it printed `ready <port>`.
struct demo {
  corvo::test::temp_dir dir{"ops_endpoint"};
  std::optional<corvo::test::child_process> process;
  unsigned short port = 0;

  explicit demo(std::vector<std::string> args) {
    args.insert(args.begin(), CORVO_OPS_DEMO_PATH);
    process.emplace(args, dir.path(), dir.path() / "demo.log");
    std::regex ready("ready ([0-9]+)");
    auto deadline = std::chrono::steady_clock::now() + 30s;
    std::smatch m;
    std::string log;
    while (std::chrono::steady_clock::now() < deadline) {
      log = read_file(dir.path() / "demo.log");
      if (std::regex_search(log, m, ready)) {
        port = static_cast<unsigned short>(std::stoi(m[1]));
        return;
      }
      BOOST_REQUIRE_MESSAGE(process->running(), "ops_demo exited: " + log);
      std::this_thread::sleep_for(20ms);  // the test thread is not an event loop
    }
    BOOST_FAIL("ops_demo did not get ready: " + log);
  }
};

http::response<http::string_body> send(unsigned short port, http::request<http::string_body> req) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  if (req[http::field::host].empty()) {
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  }
  req.prepare_payload();
  http::write(socket, req);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  return res;
}

http::response<http::string_body> get(unsigned short port, std::string target,
                                      std::string token = {}) {
  http::request<http::string_body> req{http::verb::get, target, 11};
  if (!token.empty()) {
    req.set(http::field::authorization, "Bearer " + token);
  }
  return send(port, std::move(req));
}

/// Writes raw bytes and reads what comes back until the server closes the connection.
std::string send_raw(unsigned short port, const std::string& bytes) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  boost::system::error_code ec;
  asio::write(socket, asio::buffer(bytes), ec);
  std::string out;
  char chunk[4096];
  for (;;) {
    std::size_t n = socket.read_some(asio::buffer(chunk), ec);
    out.append(chunk, n);
    if (ec) {
      break;
    }
  }
  return out;
}

/// The value of the sample line `series` ("name{labels}") in a scrape, or -1.
double sample(const std::string& scrape, const std::string& series) {
  std::istringstream in(scrape);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_endpoint)

BOOST_AUTO_TEST_CASE(metrics_match_the_workload_and_pass_promtool) {
  demo d({});
  auto res = get(d.port, "/metrics");
  BOOST_REQUIRE_EQUAL(res.result_int(), 200);
  BOOST_TEST(res[http::field::content_type] == "text/plain; version=0.0.4; charset=utf-8");
  const std::string& m = res.body();
  // 4 ok, flaky-1 twice (fails, then succeeds), 2 fail.
  BOOST_TEST(sample(m, R"(corvo_schedule_claimed_total{namespace="demo"})") == 8);
  BOOST_TEST(sample(m, R"(corvo_schedule_acked_total{namespace="demo"})") == 5);
  BOOST_TEST(sample(m, R"(corvo_schedule_dead_lettered_total{namespace="demo"})") == 2);
  BOOST_TEST(sample(m, R"(corvo_schedule_nacked_total{namespace="demo"})") == 1);
  BOOST_TEST(sample(m, R"(corvo_schedule_stale_acks_total{namespace="demo"})") == 0);
  BOOST_TEST(sample(m, R"(corvo_schedule_tasks{namespace="demo",state="scheduled"})") == 3);
  BOOST_TEST(sample(m, R"(corvo_schedule_tasks{namespace="demo",state="due"})") == 0);
  BOOST_TEST(sample(m, R"(corvo_schedule_tasks{namespace="demo",state="in_flight"})") == 0);
  BOOST_TEST(sample(m, R"(corvo_schedule_tasks{namespace="demo",state="dead"})") == 2);
  BOOST_TEST(sample(m, R"(corvo_schedule_lateness_seconds_count{namespace="demo",type="ok"})") ==
             4);
  BOOST_TEST(sample(m, R"(corvo_schedule_lateness_seconds_count{namespace="demo",type="fail"})") ==
             2);
  // Scheduled through the scheduler by the workload: 4 report (gone-1 cancelled), 4 ok,
  // 1 flaky, 2 fail.
  BOOST_TEST(sample(m, R"(corvo_schedule_scheduled_total{namespace="demo",type="report"})") == 4);
  BOOST_TEST(sample(m, R"(corvo_schedule_scheduled_total{namespace="demo",type="ok"})") == 4);
  BOOST_TEST(sample(m, R"(corvo_schedule_scheduled_total{namespace="demo",type="flaky"})") == 1);
  BOOST_TEST(sample(m, R"(corvo_schedule_scheduled_total{namespace="demo",type="fail"})") == 2);
  // The task events its store wrote: 11 schedules, 8 starts, 5 successes, flaky-1's failure,
  // 2 dead letters, gone-1's cancel.
  for (const auto& [kind, count] : std::vector<std::pair<std::string, double>>{{"scheduled", 11},
                                                                               {"started", 8},
                                                                               {"succeeded", 5},
                                                                               {"failed", 1},
                                                                               {"dead", 2},
                                                                               {"cancelled", 1}}) {
    BOOST_TEST(sample(m, R"(corvo_schedule_events_total{kind=")" + kind +
                             R"(",namespace="demo"})") == count,
               kind);
  }
  BOOST_TEST(sample(m, R"(corvo_health_up{dependency="store"})") == 1);
  BOOST_TEST(sample(m, R"(corvo_health_state{dependency="store",state="down"})") == 0);

  // promtool reads the exposition from stdin and exits 0 only when it is well-formed.
  std::ofstream(d.dir.path() / "scrape.txt") << m;
  std::string command = "promtool check metrics < '" + (d.dir.path() / "scrape.txt").string() +
                        "' > '" + (d.dir.path() / "promtool.txt").string() + "' 2>&1";
  int status = std::system(command.c_str());
  BOOST_TEST(status == 0, "promtool: " + read_file(d.dir.path() / "promtool.txt"));
}

BOOST_AUTO_TEST_CASE(health_routes_report_the_monitor) {
  demo d({});
  auto live = get(d.port, "/health/live");
  BOOST_TEST(live.result_int() == 200);
  BOOST_TEST(live.body().find(R"("live":true)") != std::string::npos);
  auto ready = get(d.port, "/health/ready");
  BOOST_TEST(ready.result_int() == 200);
  BOOST_TEST(ready.body().find(R"("name":"store")") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_requests_get_4xx_and_the_process_keeps_serving) {
  demo d({"--max-request-bytes", "1024"});
  BOOST_TEST(send_raw(d.port, "NOT A REQUEST\r\n\r\n").starts_with("HTTP/1.1 400"));
  BOOST_TEST(send_raw(d.port, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n")
                 .starts_with("HTTP/1.1 413"));
  BOOST_TEST(send_raw(d.port, "GET / HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n")
                 .starts_with("HTTP/1.1 431"));
  BOOST_TEST(get(d.port, "/api/task?ns=demo&id=%ZZ").result_int() == 400);
  BOOST_TEST(get(d.port, "/api/task?ns=nope&id=x").result_int() == 400);
  BOOST_TEST(get(d.port, "/api/task?ns=demo&id=unknown").result_int() == 404);
  BOOST_TEST(get(d.port, "/api/tasks?ns=demo&limit=100000").result_int() == 400);
  http::request<http::string_body> rebinding{http::verb::get, "/api/overview", 11};
  rebinding.set(http::field::host, "attacker.example:" + std::to_string(d.port));
  BOOST_TEST(send(d.port, rebinding).result_int() == 403);
  http::request<http::string_body> replay{http::verb::post, "/api/dead/replay?ns=demo&id=bad-2",
                                          11};
  BOOST_TEST(send(d.port, replay).result_int() == 403);  // no CSRF token
  BOOST_TEST(get(d.port, "/health/live").result_int() == 200);
  BOOST_TEST(d.process->running());
}

BOOST_AUTO_TEST_CASE(rate_limit_answers_429_beyond_the_burst) {
  demo d({"--rate-limit", "0.01", "--rate-burst", "5"});  // one token per 100 s
  std::vector<int> statuses;
  for (int i = 0; i < 8; ++i) {
    statuses.push_back(get(d.port, "/health/live").result_int());
  }
  BOOST_TEST(statuses == (std::vector<int>{200, 200, 200, 200, 200, 429, 429, 429}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_token_guards_every_route_but_the_page) {
  demo d({"--token", "tok-123"});
  BOOST_TEST(get(d.port, "/metrics").result_int() == 401);
  BOOST_TEST(get(d.port, "/metrics", "tok-124").result_int() == 401);
  BOOST_TEST(get(d.port, "/metrics", "tok-123").result_int() == 200);
  BOOST_TEST(get(d.port, "/api/overview").result_int() == 401);
  BOOST_TEST(get(d.port, "/health/ready").result_int() == 401);
  BOOST_TEST(get(d.port, "/").result_int() == 200);
  BOOST_TEST(get(d.port, "/dashboard/app.js").result_int() == 200);
}

BOOST_AUTO_TEST_SUITE_END()
