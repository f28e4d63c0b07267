#pragma once
// Configuration as a JSON document (Boost.JSON) from a file, with environment overrides.
//
// Keys are dotted paths: `scheduler.max_in_flight` names {"scheduler":{"max_in_flight":50}}.
// A path segment may itself contain dots when the JSON key does (librdkafka properties):
// `kafka.bootstrap.servers` finds {"kafka":{"bootstrap.servers":"…"}}; the longest key that
// exists at each level wins.
//
// Environment overrides: with the prefix "CORVO_", CORVO_SCHEDULER__MAX_IN_FLIGHT=50 sets
// `scheduler.max_in_flight` ("__" separates levels, the rest is lower-cased). Values from the
// environment are strings; typed getters convert them ("50" → 50, "true" → true, "250ms").
//
// Every error names the key, where the value came from and what was expected:
//   config: key 'scheduler.max_in_flight' (from CORVO_SCHEDULER__MAX_IN_FLIGHT) must be
//   an unsigned integer, got "fifty"
//
// Unknown keys: a config remembers every key a reader asked for (get, get_or, contains,
// section); those are the known keys. After reading its section, a reader calls
// reject_unknown_keys("section"), which refuses any other key below it, naming the nearest
// known one:
//   config: unknown key 'scheduler.max_inflight' (in app.json); did you mean 'max_in_flight'?
// So adding a key is the one line that reads it. A key read only in some modes must still
// be asked for in every mode (get_or into a local), or it is refused in the others. The
// record is shared by a config, its copies and its sections, and is not synchronised: read
// a config from one thread at a time (start-up code does).

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace corvo {

/// Options of config::from_file.
struct config_file_options {
  /// Apply environment overrides (apply_environment(environment_prefix)) after reading the
  /// file. On by default: a deployment overrides the file without editing it.
  bool apply_environment = true;
  std::string environment_prefix = "CORVO_";
};

/// The candidate nearest to `key` (Damerau-Levenshtein distance) when it is near enough to
/// be a likely misspelling (distance <= max(1, size/3)); for "did you mean" hints.
std::optional<std::string> nearest_key(std::string_view key,
                                       const std::vector<std::string>& candidates);

/// A configuration error; what() names the key.
class config_error : public std::runtime_error {
 public:
  config_error(std::string key, const std::string& message);
  /// The dotted key the error is about (empty for document-level errors).
  const std::string& key() const noexcept { return key_; }

 private:
  std::string key_;
};

class config {
 public:
  /// An empty configuration: every get() of a key fails, get_or() returns the default.
  config() = default;
  explicit config(boost::json::object document, std::string source = "configuration");

  /// Reads a JSON file whose top level is an object, then applies the CORVO_* environment
  /// overrides (unless `options` opts out). Throws config_error naming the file and the
  /// line/column of a syntax error, or saying the file is missing.
  static config from_file(const std::filesystem::path& path, config_file_options options = {});

  /// Parses JSON text; `source` names it in error messages.
  static config from_string(std::string_view json, std::string source = "configuration");

  /// Applies overrides from environment variables that start with `prefix`
  /// (see the header comment). `environment` is a `environ`-style array; null uses the
  /// process environment.
  void apply_environment(std::string_view prefix = "CORVO_", char** environment = nullptr);

  /// Sets `key` (creating intermediate objects) and records `origin` for error messages.
  void set(std::string_view key, boost::json::value value, std::string origin = {});

  bool contains(std::string_view key) const;

  /// The value at `key` converted to T. Supported T: std::string, bool, std::int64_t, int,
  /// std::uint64_t, unsigned, std::size_t, double, std::chrono::milliseconds (a number of
  /// ms or a string "250ms", "2s", "5m", "1h"), std::vector<std::string>, boost::json::value.
  /// Throws config_error when the key is missing or the value does not convert.
  template <class T>
  T get(std::string_view key) const;

  /// Like get(), but returns `fallback` when the key is missing (a present value of the
  /// wrong type is still an error).
  template <class T>
  T get_or(std::string_view key, T fallback) const {
    if (!contains(key)) {
      return fallback;
    }
    return get<T>(key);
  }

  /// The object at `key` as its own config whose keys are relative to it; error messages
  /// still name the full key. A missing key gives an empty section.
  config section(std::string_view key) const;

  /// The keys directly under this config (or under `key`), for checking unknown keys.
  std::vector<std::string> keys(std::string_view key = {}) const;

  /// Throws config_error for the first key below `key` (recursively) that no reader of this
  /// config or of its sections asked for, naming the nearest known key at its level and
  /// where the key came from (file or environment variable). A missing `key` passes.
  void reject_unknown_keys(std::string_view key) const;

  const boost::json::object& document() const noexcept { return document_; }

 private:
  struct asked_keys {
    std::set<std::string, std::less<>> values;    // full keys read as a whole
    std::set<std::string, std::less<>> sections;  // full keys opened with section()
  };

  const boost::json::value* find(std::string_view key) const;
  void check_known(const std::string& prefix, const boost::json::object& object) const;
  std::string full_key(std::string_view key) const;
  std::string origin_of(std::string_view key) const;
  [[noreturn]] void fail(std::string_view key, const std::string& expected,
                         const boost::json::value& got) const;

  boost::json::object document_;
  std::string source_ = "configuration";
  std::string prefix_;                                       // of a section, e.g. "scheduler."
  std::map<std::string, std::string, std::less<>> origins_;  // full key -> where it was set
  std::shared_ptr<asked_keys> asked_ = std::make_shared<asked_keys>();  // shared with sections
};

}  // namespace corvo
