#include <corvo/core/log.hpp>
#include <corvo/core/trace.hpp>

#include <boost/core/null_deleter.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/log/attributes/value_extraction.hpp>
#include <boost/log/core.hpp>
#include <boost/log/expressions/keyword.hpp>
#include <boost/log/sinks/sync_frontend.hpp>
#include <boost/log/sinks/text_ostream_backend.hpp>
#include <boost/log/sources/record_ostream.hpp>
#include <boost/log/sources/severity_channel_logger.hpp>
#include <boost/shared_ptr.hpp>
#include <boost/make_shared.hpp>

#include <atomic>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>

namespace corvo::log {
namespace {

namespace bl = boost::log;

using sink_type = bl::sinks::synchronous_sink<bl::sinks::text_ostream_backend>;
using logger_type = bl::sources::severity_channel_logger_mt<severity, std::string>;

BOOST_LOG_ATTRIBUTE_KEYWORD(severity_attr, "Severity", severity)
BOOST_LOG_ATTRIBUTE_KEYWORD(channel_attr, "Channel", std::string)
BOOST_LOG_ATTRIBUTE_KEYWORD(timestamp_attr, "Timestamp", std::string)
BOOST_LOG_ATTRIBUTE_KEYWORD(traceparent_attr, "TraceParent", std::string)

std::atomic<int> min_level{static_cast<int>(severity::info)};

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(micros / 1'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[40];
  const auto n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buffer + n, sizeof buffer - n, ".%06lldZ",
                static_cast<long long>(micros % 1'000'000));
  return buffer;
}

class logging_state {
 public:
  logging_state() { install(options{}); }

  void install(const options& opts) {
    std::lock_guard lock(mutex_);
    remove_locked();
    auto backend = boost::make_shared<bl::sinks::text_ostream_backend>();
    if (opts.stream != nullptr) {
      backend->add_stream(boost::shared_ptr<std::ostream>(opts.stream, boost::null_deleter()));
    } else if (!opts.file.empty()) {
      auto file = boost::make_shared<std::ofstream>(opts.file, std::ios::app);
      if (!*file) {
        throw std::runtime_error("log: cannot open log file '" + opts.file + "'");
      }
      backend->add_stream(file);
    } else {
      backend->add_stream(boost::shared_ptr<std::ostream>(&std::clog, boost::null_deleter()));
    }
    backend->auto_flush(true);
    sink_ = boost::make_shared<sink_type>(backend);
    const auto format = opts.format;
    sink_->set_formatter([format](const bl::record_view& rec, bl::formatting_ostream& out) {
      const auto level = rec[severity_attr].get();
      const auto channel = rec[channel_attr].get();
      const auto ts = rec[timestamp_attr].get();
      const auto message = rec[bl::expressions::smessage].get();
      const auto trace = rec[traceparent_attr];
      if (format == output_format::json) {
        out << R"({"ts":")" << ts << R"(","level":")" << to_string(level) << R"(","channel":)"
            << boost::json::serialize(boost::json::string(channel)) << R"(,"msg":)"
            << boost::json::serialize(boost::json::string(message));
        if (trace) {
          out << R"(,"traceparent":)" << boost::json::serialize(boost::json::string(trace.get()));
        }
        out << '}';
      } else {
        out << ts << ' ' << to_string(level) << " [" << channel << "] " << message;
        if (trace) {
          out << " trace=" << trace.get();
        }
      }
    });
    bl::core::get()->add_sink(sink_);
    min_level.store(static_cast<int>(opts.min_severity), std::memory_order_relaxed);
  }

  void remove() {
    std::lock_guard lock(mutex_);
    remove_locked();
    min_level.store(static_cast<int>(severity::fatal) + 1, std::memory_order_relaxed);
  }

  logger_type& logger() { return logger_; }

 private:
  void remove_locked() {
    if (sink_) {
      bl::core::get()->remove_sink(sink_);
      sink_->flush();
      sink_.reset();
    }
  }

  std::mutex mutex_;
  boost::shared_ptr<sink_type> sink_;
  logger_type logger_;
};

logging_state& state() {
  static logging_state instance;
  return instance;
}

}  // namespace

void init(const options& opts) { state().install(opts); }

void shutdown() { state().remove(); }

std::optional<severity> parse_severity(std::string_view name) {
  if (name == "trace") return severity::trace;
  if (name == "debug") return severity::debug;
  if (name == "info") return severity::info;
  if (name == "warning" || name == "warn") return severity::warning;
  if (name == "error") return severity::error;
  if (name == "fatal") return severity::fatal;
  return std::nullopt;
}

std::string_view to_string(severity s) noexcept {
  switch (s) {
    case severity::trace: return "trace";
    case severity::debug: return "debug";
    case severity::info: return "info";
    case severity::warning: return "warning";
    case severity::error: return "error";
    case severity::fatal: return "fatal";
  }
  return "unknown";
}

bool enabled(severity s) noexcept {
  return static_cast<int>(s) >= min_level.load(std::memory_order_relaxed);
}

void write(severity s, std::string_view channel, std::string_view message) {
  write_traced(s, channel, {}, message);
}

void write_traced(severity s, std::string_view channel, std::string_view traceparent,
                  std::string_view message) {
  if (!enabled(s)) {
    return;
  }
  auto& logger = state().logger();
  auto rec = logger.open_record((bl::keywords::severity = s, bl::keywords::channel = std::string(channel)));
  if (rec) {
    rec.attribute_values().insert("Timestamp",
                                  bl::attributes::make_attribute_value(utc_timestamp()));
    if (!traceparent.empty()) {
      rec.attribute_values().insert("TraceParent",
                                    bl::attributes::make_attribute_value(std::string(traceparent)));
    }
    bl::record_ostream stream(rec);
    stream << message;
    stream.flush();
    logger.push_record(std::move(rec));
  }
}

}  // namespace corvo::log
