#pragma once
// Logging through Boost.Log with a severity and a channel per record.
//
// Boost.Log's headers stay out of this header (they are heavy); records are formatted into
// a string here and handed to the compiled sink set-up in src/core/log.cpp:
//
//   corvo::log::init({.min_severity = corvo::log::severity::debug,
//                     .format = corvo::log::output_format::json});
//   CORVO_LOG(info, "scheduler") << "claimed " << n << " tasks";
//
// A record below the minimum severity costs one comparison; its stream expression is not
// evaluated.

#include <iosfwd>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace corvo::log {

enum class severity { trace, debug, info, warning, error, fatal };

/// Text lines (`2026-11-22T10:00:00.123456Z info    [scheduler] message`) or JSON lines
/// (`{"ts":"…","level":"info","channel":"scheduler","msg":"…"}`).
enum class output_format { text, json };

struct options {
  severity min_severity = severity::info;
  output_format format = output_format::text;
  /// Log file to append to; empty means standard error.
  std::string file;
  /// Write to this stream instead (tests, embedding applications). Not owned: it must
  /// outlive the sink, i.e. until the next init() or shutdown().
  std::ostream* stream = nullptr;
};

/// Replaces the active sink with one built from `opts`. Safe to call again to reconfigure.
/// Before the first call, records at info and above go to standard error as text.
void init(const options& opts);

/// Flushes and removes the sink; later records go nowhere until init() is called again.
void shutdown();

/// Parses "trace", "debug", "info", "warning" (or "warn"), "error", "fatal".
std::optional<severity> parse_severity(std::string_view name);
std::string_view to_string(severity s) noexcept;

/// True when a record of severity `s` would be written.
bool enabled(severity s) noexcept;

/// Writes one record. Thread-safe.
void write(severity s, std::string_view channel, std::string_view message);

/// A record being composed with `<<`; written when it goes out of scope.
class record {
 public:
  record(severity s, std::string_view channel) : severity_(s), channel_(channel) {}
  ~record() { write(severity_, channel_, stream_.view()); }
  record(const record&) = delete;
  record& operator=(const record&) = delete;

  std::ostream& stream() noexcept { return stream_; }

 private:
  severity severity_;
  std::string_view channel_;
  std::ostringstream stream_;
};

}  // namespace corvo::log

/// `CORVO_LOG(info, "channel") << ...;` writes one record when `info` is enabled.
#define CORVO_LOG(sev, channel)                                           \
  if (!::corvo::log::enabled(::corvo::log::severity::sev)) {              \
  } else                                                                  \
    ::corvo::log::record(::corvo::log::severity::sev, (channel)).stream()
