#pragma once
// Builders of the store's argument types for test scenarios. GCC 12 mishandles braced
// aggregates holding strings inside coroutines (double destruction), so scenarios build them
// through these, outside the coroutine.

#include <chrono>
#include <corvo/schedule/store.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace corvo::test {

/// A task of type "email" due at `due`, with `payload` (a number) and 3 attempts at most.
inline schedule::task email_task(std::string id, schedule::time_point due, int payload = 0) {
  schedule::task t;
  t.id = std::move(id);
  t.type = "email";
  t.payload = payload;
  t.due = due;
  t.max_attempts = 3;
  return t;
}

/// A finished run of `id` under lease `token`; `next_due` set: a recurring task's next one.
inline schedule::completion completion_of(std::string id, std::string token,
                                          std::optional<schedule::time_point> next_due = {}) {
  schedule::completion c;
  c.id = std::move(id);
  c.token = std::move(token);
  c.next_due = next_due;
  return c;
}

/// completion_of as a batch of one.
inline std::vector<schedule::completion> completions(
    std::string id, std::string token, std::optional<schedule::time_point> next_due = {}) {
  std::vector<schedule::completion> out;
  out.push_back(completion_of(std::move(id), std::move(token), next_due));
  return out;
}

/// A failed run; `retry_in` unset: dead-letter it.
inline schedule::failure failing(std::string id, std::string token, std::string error,
                                 std::optional<std::chrono::microseconds> retry_in) {
  schedule::failure f;
  f.id = std::move(id);
  f.token = std::move(token);
  f.error = std::move(error);
  f.retry_in = retry_in;
  return f;
}

/// One lease to extend.
inline std::vector<schedule::lease_ref> lease_refs(std::string id, std::string token) {
  std::vector<schedule::lease_ref> out(1);
  out[0].id = std::move(id);
  out[0].token = std::move(token);
  return out;
}

}  // namespace corvo::test
