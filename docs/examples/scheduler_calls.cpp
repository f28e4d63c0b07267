// The scheduler calls docs/scheduler.md and README show, as a program that runs to the end
// by itself (memory store). Built and run against the installed package by the
// install.find_package test; docs_snippets_test checks the docs quote it verbatim.
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <iostream>

namespace asio = boost::asio;
namespace json = boost::json;
namespace schedule = corvo::schedule;
using namespace std::chrono_literals;

struct send_timeout {
  std::string notification;
};
void tag_invoke(json::value_from_tag, json::value& v, const send_timeout& s) {
  v = {{"notification", s.notification}};
}
send_timeout tag_invoke(json::value_to_tag<send_timeout>, const json::value& v) {
  return {json::value_to<std::string>(v.at("notification"))};
}

int escalated = 0;
asio::awaitable<void> on_timeout(send_timeout t, const schedule::task&) {
  std::cout << "no delivery confirmation for " << t.notification << std::endl;
  ++escalated;
  co_return;
}

asio::awaitable<void> calls(schedule::scheduler& s) {
  // [calls]
  // Safe on GCC 12: literals, a named payload, no `task{...}` or `send_timeout{...}`
  // temporary inside the co_await (GCC 12 destroys those twice).
  const send_timeout payload{"n-42"};
  co_await s.schedule("n-42", "notification.send_timeout", payload, schedule::now() + 50ms);
  co_await s.cancel("n-42");  // the delivery was confirmed

  // Every field of a task: build it in a named variable first.
  schedule::task t;
  t.id = "n-43";
  t.type = "notification.send_timeout";
  t.payload = json::value_from(send_timeout{"n-43"});  // no co_await here: fine
  t.due = schedule::now() + 100ms;
  t.max_attempts = 3;
  co_await s.schedule(std::move(t));
  // [/calls]
}

asio::awaitable<void> main_task(schedule::scheduler& s) {
  corvo::task_group group(co_await asio::this_coro::executor);
  co_await group.spawn(s.run());
  co_await calls(s);
  while (escalated == 0) {
    co_await corvo::sleep_for(10ms);
  }
  group.cancel();  // the graceful stop a SIGTERM would cause: run() drains, then ends
  try {
    co_await group.join();
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::operation_aborted) {
      throw;
    }
  }
}

int main() {
  corvo::runtime rt;
  schedule::scheduler s(rt.get_executor(), schedule::scheduler_options{});
  s.handlers().on<send_timeout>("notification.send_timeout", on_timeout);
  const auto result = rt.run(main_task(s));
  const bool ok = escalated == 1 && !rt.failure();
  std::cout << (ok ? "ok" : "FAILED") << " (" << corvo::to_string(result) << ")" << std::endl;
  return ok ? 0 : 1;
}
