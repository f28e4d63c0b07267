// hello_scheduler: the smallest complete scheduler program. It schedules two greetings,
// cancels one, runs the other at its due time, and stops gracefully on SIGINT/SIGTERM
// (the handlers in flight finish first). Its components live in a corvo::health::app, the
// composition root. In-process (memory) store; docs/scheduler.md shows what changes for
// Redis, docs/health.md what a Redis dependency adds.
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <corvo/health/app.hpp>
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

// A component that schedules the two greetings, cancels bob's and returns: a component that
// returns is done (never restarted); the scheduler component runs on until SIGINT/SIGTERM.
asio::awaitable<void> schedule_greetings(schedule::scheduler& s) {
  const greeting ada{"ada"}, bob{"bob"};  // named, not greeting{...} in a co_await (GCC 12)
  co_await s.schedule("hello-ada", "greet", ada, schedule::now() + 100ms);
  co_await s.schedule("hello-bob", "greet", bob, schedule::now() + 200ms);
  const bool cancelled = co_await s.cancel("hello-bob");
  std::cout << "cancelled hello-bob: " << std::boolalpha << cancelled << std::endl;
}

int main() {
  // The composition root: one io_context; SIGINT/SIGTERM cancel the components in reverse
  // order of registration, each draining (the handlers in flight finish) before the next.
  corvo::health::app app;
  schedule::scheduler s(app.get_executor(), schedule::scheduler_options{});
  s.handlers().on<greeting>("greet", greet);
  const auto scheduler = app.add_component({"scheduler", [&s] { return s.run(); }}, {});
  // Starts once the scheduler runs (it depends on the scheduler component).
  app.add_component({"greetings", [&s] { return schedule_greetings(s); }}, {scheduler});
  const auto result = app.run();
  std::cout << "stopped: " << corvo::to_string(result) << std::endl;
  return corvo::exit_code(result);
}
