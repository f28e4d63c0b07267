// The runtime core README shows ("Runtime core in one screen"), as a program that runs to
// the end by itself: a supervised component dispatches a batch of jobs through a bounded
// task_group and returns, which ends the supervision and the runtime. Built and run against
// the installed package by the install.find_package test; docs_snippets_test checks that
// README quotes it verbatim.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct job {
  int id = 0;
};
std::atomic<int> jobs_done{0};
asio::awaitable<void> run_job(job j);
asio::awaitable<void> listener();
asio::awaitable<bool> redis_is_up();

// [core]
#include <corvo/core/runtime.hpp>
#include <corvo/core/supervisor.hpp>
#include <corvo/core/task_group.hpp>

asio::awaitable<void> dispatch(std::vector<job> jobs) {
  corvo::task_group group(co_await asio::this_coro::executor, {.max_in_flight = 50});
  for (auto& j : jobs) co_await group.spawn(run_job(j));  // suspends at 50 in flight
  co_await group.join();  // first failure cancels the rest; nothing outlives the join
}

int main() {
  corvo::runtime rt({.shutdown_deadline = std::chrono::seconds(10)});
  // SIGINT/SIGTERM cancel the root; in-flight work finishes within the deadline.
  return corvo::exit_code(rt.run(corvo::supervise(listener, redis_is_up, {.name = "events"})));
}
// [/core]

#include <corvo/core/backoff.hpp>

asio::awaitable<void> run_job(job j) {
  co_await corvo::sleep_for(1ms * (j.id % 5));
  ++jobs_done;
}

// The supervised component: here one batch of 200 jobs, then it returns (which ends the
// supervision); a real listener would read its jobs from a stream until cancelled.
asio::awaitable<void> listener() {
  std::vector<job> jobs;
  for (int i = 0; i < 200; ++i) {
    jobs.push_back(job{i});
  }
  co_await dispatch(std::move(jobs));
  std::cout << "jobs done: " << jobs_done << std::endl;
  if (jobs_done != 200) {
    // Not a throw: the supervisor would restart a failing component.
    std::cerr << "FAILED: not every job ran" << std::endl;
    std::exit(1);
  }
}

// The probe the supervisor asks before starting the component and every probe_interval;
// a real one would PING Redis (see redis_client.cpp). This program has no dependency.
asio::awaitable<bool> redis_is_up() {
  co_return true;
}
