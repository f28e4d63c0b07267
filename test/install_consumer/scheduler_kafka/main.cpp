// Links corvo::scheduler: a memory-store scheduler whose due tasks go through Kafka (the
// embedded in-process cluster) to the handler, run to the end by itself.
#include <corvo/core/backoff.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <iostream>

namespace asio = boost::asio;
namespace schedule = corvo::schedule;
using namespace std::chrono_literals;

int handled = 0;

asio::awaitable<void> on_ping(const schedule::claimed_task& t) {
  std::cout << "handled " << t.work.id << " through Kafka" << std::endl;
  ++handled;
  co_return;
}

asio::awaitable<void> main_task(schedule::scheduler& s) {
  const auto executor = co_await asio::this_coro::executor;
  corvo::task_group group(executor);
  co_await group.spawn(s.run());
  schedule::task t;
  t.id = "ping-1";
  t.type = "ping";
  t.due = schedule::now() + 20ms;
  co_await s.schedule(std::move(t));
  for (int waited = 0; handled == 0 && waited < 3000; ++waited) {
    co_await corvo::sleep_for(10ms);
  }
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::operation_aborted) {
      throw;
    }
  }
}

int main() {
  const auto cfg = corvo::config::from_string(R"({
    "scheduler": { "provider": "memory", "sink": "kafka" },
    "kafka": { "bootstrap.servers": "embedded:1",
               "consumer": { "fetch.wait.max.ms": 10 } } })");
  corvo::runtime rt;
  schedule::scheduler s(rt.get_executor(), schedule::scheduler_options::from(cfg));
  s.handlers().on_task("ping", on_ping);
  const auto result = rt.run(main_task(s));
  const bool ok = handled == 1 && !rt.failure();
  std::cout << (ok ? "corvo scheduler+kafka consumer ok" : "FAILED") << " ("
            << corvo::to_string(result) << ")" << std::endl;
  return ok ? 0 : 1;
}
