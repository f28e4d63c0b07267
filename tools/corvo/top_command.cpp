// `corvo top`: a live terminal view of one scheduler namespace, refreshed each interval.
//
// From the store (every refresh): scheduled, due now, in flight, dead, and how late the
// oldest due task is. From the ops endpoints of the processes that run the namespace
// (--metrics URL, repeatable; their /metrics): runs per second (acked, retried,
// dead-lettered, summed over the endpoints) and the lateness percentiles of the runs
// started since the last refresh (from corvo_schedule_lateness_seconds, upper bucket bounds).

#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>
#include <cmath>
#include <corvo/core/config.hpp>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "cli.hpp"
#include "command.hpp"
#include "store_target.hpp"
#include "time_text.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
namespace po = boost::program_options;
namespace redis = corvo::redis;
using namespace corvo::schedule;

namespace {

// ---- Prometheus text (what corvo's /metrics renders) ------------------------------------------

struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses the sample lines of the text format (comments skipped). Throws
// std::invalid_argument naming the line that does not parse.
std::vector<sample> parse_samples(const std::string& text) {
  std::vector<sample> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    sample s;
    std::size_t i = line.find_first_of("{ ");
    if (i == std::string::npos) {
      throw std::invalid_argument("metrics line without a value: " + line);
    }
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const auto eq = line.find("=\"", i);
        if (eq == std::string::npos) {
          throw std::invalid_argument("bad labels in metrics line: " + line);
        }
        std::string key = line.substr(i, eq - i), value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') {
          ++i;
        }
      }
      ++i;  // '}'
    }
    const auto rest = line.substr(i);
    const auto v = rest.find_first_not_of(' ');
    if (v == std::string::npos) {
      throw std::invalid_argument("metrics line without a value: " + line);
    }
    const auto text_value = rest.substr(v, rest.find(' ', v) - v);
    s.value = text_value == "+Inf" ? INFINITY : std::strtod(text_value.c_str(), nullptr);
    out.push_back(std::move(s));
  }
  return out;
}

// What one scrape of all endpoints says about the namespace.
struct reading {
  double acked = 0, retried = 0, dead_lettered = 0;
  std::map<double, double> lateness;  // upper bound (le) -> cumulative count
};

reading read_namespace(const std::vector<sample>& samples, const std::string& ns, reading r) {
  for (const auto& s : samples) {
    const auto it = s.labels.find("namespace");
    if (it == s.labels.end() || it->second != ns) {
      continue;
    }
    if (s.name == "corvo_schedule_acked_total") {
      r.acked += s.value;
    } else if (s.name == "corvo_schedule_nacked_total") {
      r.retried += s.value;
    } else if (s.name == "corvo_schedule_dead_lettered_total") {
      r.dead_lettered += s.value;
    } else if (s.name == "corvo_schedule_lateness_seconds_bucket") {
      const auto le = s.labels.find("le");
      if (le != s.labels.end()) {
        const double bound = le->second == "+Inf" ? INFINITY : std::stod(le->second);
        r.lateness[bound] += s.value;
      }
    }
  }
  return r;
}

// The upper bound of the bucket holding quantile `q` of the observations between two
// readings; nullopt without observations.
std::optional<double> quantile(const reading& before, const reading& now, double q) {
  std::vector<std::pair<double, double>> cumulative;
  for (const auto& [bound, count] : now.lateness) {
    const auto was = before.lateness.find(bound);
    cumulative.emplace_back(bound, count - (was == before.lateness.end() ? 0 : was->second));
  }
  if (cumulative.empty() || cumulative.back().second <= 0) {
    return std::nullopt;
  }
  const double total = cumulative.back().second;
  for (const auto& [bound, count] : cumulative) {
    if (count >= q * total) {
      return bound;
    }
  }
  return cumulative.back().first;
}

// GET http://host:port/metrics (with a bearer token when given).
asio::awaitable<std::string> fetch_metrics(std::string url, std::string token) {
  std::string rest = url;
  if (rest.starts_with("http://")) {
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    throw std::invalid_argument("--metrics '" + url + "': only http:// endpoints");
  }
  std::string target = "/metrics";
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    target = rest.substr(slash);
    rest = rest.substr(0, slash);
  }
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) {
    throw std::invalid_argument("--metrics '" + url + "': needs host:port");
  }
  const auto host = rest.substr(0, colon), port = rest.substr(colon + 1);
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver(ex);
  const auto endpoints = co_await resolver.async_resolve(host, port, asio::use_awaitable);
  beast::tcp_stream stream(ex);
  stream.expires_after(std::chrono::seconds(3));
  co_await stream.async_connect(endpoints, asio::use_awaitable);
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, rest);
  if (!token.empty()) {
    req.set(http::field::authorization, "Bearer " + token);
  }
  co_await http::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  co_await http::async_read(stream, buffer, res, asio::use_awaitable);
  if (res.result() != http::status::ok) {
    throw std::runtime_error("--metrics '" + url + "' answered " +
                             std::to_string(res.result_int()));
  }
  co_return res.body();
}

struct top_options {
  std::vector<std::string> endpoints;
  std::string token;
  std::chrono::milliseconds interval{1000};
  std::size_t iterations = 0;  // 0: until interrupted
  bool as_json = false;
};

std::string seconds_text(std::optional<double> s) {
  if (!s) {
    return "-";
  }
  if (std::isinf(*s)) {
    return ">60s";
  }
  std::ostringstream out;
  out << "<=" << *s << "s";
  return out.str();
}

asio::awaitable<reading> scrape(const top_options& o, const std::string& ns) {
  reading r;
  for (const auto& url : o.endpoints) {
    const auto text = co_await fetch_metrics(url, o.token);
    r = read_namespace(parse_samples(text), ns, r);
  }
  co_return r;
}

asio::awaitable<int> run_top(redis_store& s, std::string ns, top_options o) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  const bool tty = !o.as_json && isatty(STDOUT_FILENO) == 1;
  std::optional<reading> previous;
  auto previous_at = std::chrono::steady_clock::now();
  for (std::size_t round = 0; o.iterations == 0 || round < o.iterations; ++round) {
    if (round > 0) {
      timer.expires_after(o.interval);
      co_await timer.async_wait(asio::use_awaitable);
    }
    const auto st = co_await s.stats();
    const auto head = co_await s.browse(0, 1);
    const auto at = now();
    std::optional<double> oldest_late;
    if (!head.empty() && head[0].due <= at) {
      oldest_late = std::chrono::duration<double>(at - head[0].due).count();
    }
    std::optional<reading> current;
    if (!o.endpoints.empty()) {
      current = co_await scrape(o, ns);
    }
    const auto taken_at = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(taken_at - previous_at).count();
    json::object line;
    line["namespace"] = ns;
    line["time"] = corvo::tool::iso8601(at);
    line["scheduled"] = st.scheduled;
    line["due"] = st.due_now;
    line["in_flight"] = st.in_flight;
    line["dead"] = st.dead;
    line["oldest_due_late_s"] = oldest_late ? json::value(*oldest_late) : json::value(nullptr);
    if (current && previous && elapsed > 0) {
      line["interval_s"] = elapsed;
      line["acked_per_s"] = (current->acked - previous->acked) / elapsed;
      line["retried_per_s"] = (current->retried - previous->retried) / elapsed;
      line["dead_lettered_per_s"] = (current->dead_lettered - previous->dead_lettered) / elapsed;
      for (auto [key, q] : {std::pair{"lateness_p50_s", 0.5}, std::pair{"lateness_p90_s", 0.9},
                            std::pair{"lateness_p99_s", 0.99}}) {
        const auto v = quantile(*previous, *current, q);
        line[key] = v && !std::isinf(*v) ? json::value(*v) : json::value(nullptr);
      }
    }
    if (o.as_json) {
      std::cout << json::serialize(line) << std::endl;
    } else {
      if (tty) {
        std::cout << "\x1b[H\x1b[2J";
      }
      std::cout << "corvo top  namespace " << ns << "  " << corvo::tool::iso8601(at) << "\n"
                << "tasks      scheduled " << st.scheduled << "  due now " << st.due_now
                << "  in flight " << st.in_flight << "  dead " << st.dead << "\n"
                << "oldest due " << (oldest_late ? std::to_string(*oldest_late) + "s late" : "-")
                << "\n";
      if (o.endpoints.empty()) {
        std::cout
            << "runs/s     (give --metrics http://HOST:PORT of the processes' ops endpoints)\n";
      } else if (!line.contains("acked_per_s")) {
        std::cout << "runs/s     (measuring...)\n";
      } else {
        std::cout << std::fixed << std::setprecision(1) << "runs/s     acked "
                  << line["acked_per_s"].as_double() << "  retried "
                  << line["retried_per_s"].as_double() << "  dead-lettered "
                  << line["dead_lettered_per_s"].as_double() << std::defaultfloat << "\n"
                  << "lateness   p50 " << seconds_text(quantile(*previous, *current, 0.5))
                  << "  p90 " << seconds_text(quantile(*previous, *current, 0.9)) << "  p99 "
                  << seconds_text(quantile(*previous, *current, 0.99))
                  << "  (runs started since the last refresh)\n";
      }
      if (!tty) {
        std::cout << "\n";
      }
      std::cout.flush();
    }
    previous = current;
    previous_at = taken_at;
  }
  co_return 0;
}

asio::awaitable<int> with_store_top(redis::client& conn, corvo::tool::store_target target,
                                    top_options o) {
  auto options = co_await corvo::tool::store_options(conn, target);
  redis_store s(conn, target.redis, options);
  co_return co_await run_top(s, options.name_space, std::move(o));
}

int top(const std::vector<std::string>& args) {
  corvo::tool::store_flags c;
  top_options o;
  std::string interval = "1s";
  po::options_description options("options");
  corvo::tool::add_store_flags(options, c);
  options.add_options()("metrics", po::value(&o.endpoints)->composing(),
                        "ops endpoint of a process running the namespace, http://HOST:PORT "
                        "(repeatable): adds runs per second and lateness")(
      "token", po::value(&o.token), "bearer token of those endpoints (ops.token)")(
      "interval", po::value(&interval)->default_value("1s"), "refresh period")(
      "iterations", po::value(&o.iterations)->default_value(0),
      "refreshes before exiting (0: until interrupted)");
  if (corvo::tool::help_requested(
          args, "corvo top [--metrics http://HOST:PORT]... [--interval 1s] [--iterations N]",
          options)) {
    return 0;
  }
  corvo::tool::parse_arguments(args, options);
  corvo::config cfg;
  cfg.set("interval", json::string(interval), "--interval");
  o.interval = cfg.get<std::chrono::milliseconds>("interval");
  if (o.interval.count() <= 0) {
    throw std::invalid_argument("--interval must be positive");
  }
  o.as_json = c.json_output;
  const auto target = corvo::tool::resolve_target(c);
  return corvo::tool::run_with_client(
      target, [target, o](redis::client& conn) { return with_store_top(conn, target, o); });
}

const corvo::tool::registration top_command{
    {"top", "a live view of a scheduler namespace: counts, lateness, runs per second", top}};

}  // namespace
