#pragma once
// The tasks and windows of the deduplication tests (schedule_dedup_test by id,
// schedule_dedup_key_test by key).

#include <boost/json.hpp>
#include <chrono>
#include <corvo/schedule/store.hpp>
#include <string>

namespace corvo::test {

/// A task of type "index.rebuild" with `payload` as a JSON string, due at `due`.
inline schedule::task dedup_task(std::string id, std::string payload, schedule::time_point due) {
  schedule::task t;
  t.id = std::move(id);
  t.type = "index.rebuild";
  t.payload = boost::json::string(payload);
  t.due = due;
  return t;
}

/// Deduplication options (named, so co_await never sees a brace-initialised temporary).
inline schedule::dedup_options dedup_window(std::chrono::milliseconds window,
                                            schedule::dedup_mode mode) {
  schedule::dedup_options o;
  o.window = window;
  o.mode = mode;
  return o;
}

}  // namespace corvo::test
