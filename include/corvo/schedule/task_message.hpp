#pragma once
// The Kafka form of a claimed task, as the kafka_sink publishes it and the kafka_worker reads
// it. The record key is the task id (runs of one task stay on one partition, in order); the
// value is a JSON object:
//
//   {"id": "order-42", "type": "email.timeout", "payload": {...},
//    "due": 1795430400000000, "occurrence": 1795430400000000, "attempt": 1, "max_attempts": 5,
//    "published": 1795430400000312}
//
// `occurrence` is task::occurrence (optional when decoding: the due time when absent).
// `due`, `occurrence` and `published` are microseconds since the Unix epoch (UTC); `attempt`
// counts this run (1 for the first). "timeout_ms" (the task's own run timeout) is present only
// when the task has one; the kafka_worker cancels a handler run past it (else past its own
// `run_timeout`). Other members are ignored, so newer publishers can add some. The task's
// trace context is not in the value: the Kafka sink sends it as the record header
// "traceparent" (only when the task has one) and the kafka_worker reads it from there.

#include <corvo/schedule/store.hpp>

#include <string>
#include <string_view>

namespace corvo::schedule {

/// Encodes run `t.work.attempts` of `t`, published at `published`.
std::string encode_task_message(const claimed_task& t, time_point published);

/// A decoded message: the task (id, type, payload, due, occurrence, attempts = this run,
/// max_attempts, timeout;
/// no recurrence, which stays with the store) and when it was published.
struct task_message {
  task work;
  time_point published{};
};

/// Decodes a message value. Throws permanent_error naming what is wrong: not JSON, not an
/// object, a missing or mistyped member.
task_message decode_task_message(std::string_view json);

}  // namespace corvo::schedule
