// hello_scheduler: the smallest complete scheduler program. It schedules two greetings,
// cancels one, runs the other at its due time, and stops gracefully on SIGINT/SIGTERM
// (the handlers in flight finish first). In-process (memory) store; docs/scheduler.md
// shows what changes for Redis.
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <iostream>

namespace asio = boost::asio;
namespace json = boost::json;
namespace schedule = corvo::schedule;
using namespace std::chrono_literals;

struct greeting {
  std::string name;
};
void tag_invoke(json::value_from_tag, json::value& v, const greeting& g) {
  v = {{"name", g.name}};
}
greeting tag_invoke(json::value_to_tag<greeting>, const json::value& v) {
  return {json::value_to<std::string>(v.at("name"))};
}

asio::awaitable<void> greet(greeting g, const schedule::task& t) {
  std::cout << "hello, " << g.name << " (task " << t.id << ")" << std::endl;
  co_return;
}

// The root coroutine. s.run() is its child, not detached: the runtime's stop request
// cancels the root, the group passes it to run(), and run() drains before join() returns.
asio::awaitable<void> serve(schedule::scheduler& s) {
  corvo::task_group group(co_await asio::this_coro::executor);
  co_await group.spawn(s.run());
  const greeting ada{"ada"}, bob{"bob"};  // named, not greeting{...} in a co_await (GCC 12)
  co_await s.schedule("hello-ada", "greet", ada, schedule::now() + 100ms);
  co_await s.schedule("hello-bob", "greet", bob, schedule::now() + 200ms);
  const bool cancelled = co_await s.cancel("hello-bob");
  std::cout << "cancelled hello-bob: " << std::boolalpha << cancelled << std::endl;
  co_await group.join();  // runs until SIGINT/SIGTERM
}

int main() {
  corvo::runtime rt;  // one io_context; SIGINT/SIGTERM request a graceful stop
  schedule::scheduler s(rt.get_executor(), schedule::scheduler_options{});
  s.handlers().on<greeting>("greet", greet);
  const auto result = rt.run(serve(s));
  std::cout << "stopped: " << corvo::to_string(result) << std::endl;
  return corvo::exit_code(result);
}
