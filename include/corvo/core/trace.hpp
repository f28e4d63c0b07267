#pragma once
// W3C trace context (https://www.w3.org/TR/trace-context/): the `traceparent` a producer
// attaches to a task, a stream entry or a message so that the handler's log records can be
// joined to the trace that caused them.
//
//   00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
//   version-trace id (32 hex)-parent id (16 hex)-flags (2 hex)
//
// corvo carries the text as given (it starts no spans): schedule() stores it in the task
// record, the Kafka sink sends it as the record header "traceparent", a stream entry holds
// it as the field "traceparent". Handlers read it from their context (task::traceparent,
// stream::entry::traceparent(), kafka::message::header("traceparent")) and write it into
// their log records with CORVO_LOG_TRACED, which adds it as the Boost.Log attribute
// "TraceParent" (JSON lines: "traceparent"; text lines: "trace=…").
//
// Why not a thread-scoped attribute set around the handler: handlers are coroutines and
// many of them interleave on one thread, so an attribute scoped to the thread would tag the
// records of whatever other handler runs while this one waits.

#include <corvo/core/log.hpp>
#include <string>
#include <string_view>

namespace corvo::trace {

/// The header / field / member name the trace context travels under.
inline constexpr std::string_view traceparent_name = "traceparent";

/// Why `text` is not a valid traceparent, or empty when it is. Valid: exactly
/// 2-32-16-2 lowercase hex digits separated by '-', the version not "ff", the trace id and
/// the parent id not all zeros (a version above 00 is accepted in the same 55-character
/// form).
std::string traceparent_problem(std::string_view text);

/// True when traceparent_problem(text) is empty.
bool is_valid_traceparent(std::string_view text) noexcept;

/// Throws std::invalid_argument("<what>: invalid traceparent '<text>': <reason>") unless
/// `text` is empty (no trace) or a valid traceparent.
void check_traceparent(std::string_view text, std::string_view what);

}  // namespace corvo::trace

namespace corvo::log {

/// Writes one record like write(), carrying `traceparent` as the Boost.Log attribute
/// "TraceParent" when it is not empty. Thread-safe.
void write_traced(severity s, std::string_view channel, std::string_view traceparent,
                  std::string_view message);

/// A record being composed with `<<` that carries a trace context; written when it goes out
/// of scope. `traceparent` must outlive the record (it is a full expression in
/// CORVO_LOG_TRACED).
class traced_record {
 public:
  traced_record(severity s, std::string_view channel, std::string_view traceparent)
      : severity_(s), channel_(channel), traceparent_(traceparent) {}
  ~traced_record() { write_traced(severity_, channel_, traceparent_, stream_.view()); }
  traced_record(const traced_record&) = delete;
  traced_record& operator=(const traced_record&) = delete;

  std::ostream& stream() noexcept { return stream_; }

 private:
  severity severity_;
  std::string_view channel_;
  std::string_view traceparent_;
  std::ostringstream stream_;
};

}  // namespace corvo::log

/// `CORVO_LOG_TRACED(info, "channel", t.traceparent) << ...;` writes one record carrying the
/// trace context (none when it is empty) when `info` is enabled.
#define CORVO_LOG_TRACED(sev, channel, traceparent)          \
  if (!::corvo::log::enabled(::corvo::log::severity::sev)) { \
  } else                                                     \
    ::corvo::log::traced_record(::corvo::log::severity::sev, (channel), (traceparent)).stream()
