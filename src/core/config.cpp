#include <algorithm>
#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>
#include <cctype>
#include <charconv>
#include <corvo/core/config.hpp>
#include <fstream>
#include <limits>
#include <sstream>

extern char** environ;

namespace corvo {
namespace {

namespace json = boost::json;

std::vector<std::string> split(std::string_view key) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= key.size()) {
    const auto dot = key.find('.', start);
    const auto end = dot == std::string_view::npos ? key.size() : dot;
    parts.emplace_back(key.substr(start, end - start));
    if (dot == std::string_view::npos) {
      break;
    }
    start = dot + 1;
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts, std::size_t from, std::size_t to) {
  std::string out;
  for (auto i = from; i < to; ++i) {
    if (i != from) {
      out += '.';
    }
    out += parts[i];
  }
  return out;
}

// Finds the value at `parts` below `object`, preferring the longest key at each level.
const json::value* lookup(const json::object& object, const std::vector<std::string>& parts,
                          std::size_t from) {
  for (auto to = parts.size(); to > from; --to) {
    const auto it = object.find(join(parts, from, to));
    if (it == object.end()) {
      continue;
    }
    if (to == parts.size()) {
      return &it->value();
    }
    if (it->value().is_object()) {
      if (const auto* found = lookup(it->value().get_object(), parts, to)) {
        return found;
      }
    }
  }
  return nullptr;
}

// "a, b,c" -> {"a", "b", "c"}; empty items are dropped.
std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> items;
  while (!text.empty()) {
    const auto comma = text.find(',');
    auto item = text.substr(0, comma);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) {
      item.remove_prefix(1);
    }
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) {
      item.remove_suffix(1);
    }
    if (!item.empty()) {
      items.emplace_back(item);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    text.remove_prefix(comma + 1);
  }
  return items;
}

std::string describe(const json::value& v) {
  auto text = json::serialize(v);
  if (text.size() > 60) {
    text = text.substr(0, 57) + "...";
  }
  return text;
}

template <class Int>
std::optional<Int> parse_integer(std::string_view text) {
  Int value{};
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || text.empty()) {
    return std::nullopt;
  }
  return value;
}

template <class Int>
std::optional<Int> to_integer(const json::value& v) {
  if (v.is_int64()) {
    const auto i = v.get_int64();
    if constexpr (std::is_signed_v<Int>) {
      if (i >= std::numeric_limits<Int>::min() && i <= std::numeric_limits<Int>::max()) {
        return static_cast<Int>(i);
      }
    } else {
      if (i >= 0 && static_cast<std::uint64_t>(i) <= std::numeric_limits<Int>::max()) {
        return static_cast<Int>(i);
      }
    }
    return std::nullopt;
  }
  if (v.is_uint64()) {
    const auto u = v.get_uint64();
    if (u <= static_cast<std::uint64_t>(std::numeric_limits<Int>::max())) {
      return static_cast<Int>(u);
    }
    return std::nullopt;
  }
  if (v.is_string()) {
    return parse_integer<Int>(std::string_view(v.get_string()));
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> to_milliseconds(const json::value& v) {
  if (auto ms = to_integer<std::int64_t>(v); ms && *ms >= 0) {
    return std::chrono::milliseconds(*ms);
  }
  if (!v.is_string()) {
    return std::nullopt;
  }
  std::string_view text(v.get_string());
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  const auto number = parse_integer<std::int64_t>(text.substr(0, digits));
  if (!number) {
    return std::nullopt;
  }
  const auto unit = text.substr(digits);
  if (unit == "ms")
    return std::chrono::milliseconds(*number);
  if (unit == "s")
    return std::chrono::seconds(*number);
  if (unit == "m" || unit == "min")
    return std::chrono::minutes(*number);
  if (unit == "h")
    return std::chrono::hours(*number);
  return std::nullopt;
}

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i)
    d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j)
    d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::optional<std::string> nearest_key(std::string_view key,
                                       const std::vector<std::string>& candidates) {
  const std::size_t limit = std::max<std::size_t>(1, key.size() / 3);
  std::optional<std::string> best;
  std::size_t best_distance = limit + 1;
  for (const auto& candidate : candidates) {
    const auto distance = edit_distance(key, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

config_error::config_error(std::string key, const std::string& message)
    : std::runtime_error("config: " + message), key_(std::move(key)) {}

config::config(json::object document, std::string source)
    : document_(std::move(document)), source_(std::move(source)) {}

config config::from_file(const std::filesystem::path& path, config_file_options options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw config_error({}, "cannot read configuration file '" + path.string() + "'");
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto result = from_string(text.str(), path.string());
  if (options.apply_environment) {
    result.apply_environment(options.environment_prefix);
  }
  return result;
}

config config::from_string(std::string_view text, std::string source) {
  boost::system::error_code ec;
  json::parse_options options;
  options.allow_comments = true;
  options.allow_trailing_commas = true;
  json::stream_parser parser({}, options);
  const auto consumed = parser.write_some(text.data(), text.size(), ec);
  if (!ec) {
    parser.finish(ec);
  }
  if (ec) {
    // Name the line and column where the parser stopped.
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < consumed && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw config_error({}, source + ":" + std::to_string(line) + ":" + std::to_string(column) +
                               ": invalid JSON: " + ec.message());
  }
  json::value document = parser.release();
  if (!document.is_object()) {
    throw config_error({}, source + ": the top level must be a JSON object");
  }
  return config(std::move(document.get_object()), std::move(source));
}

void config::apply_environment(std::string_view prefix, char** environment) {
  for (char** entry = environment ? environment : environ; entry && *entry; ++entry) {
    std::string_view variable(*entry);
    const auto eq = variable.find('=');
    if (eq == std::string_view::npos || variable.substr(0, prefix.size()) != prefix) {
      continue;
    }
    const auto name = variable.substr(0, eq);
    std::string key;
    for (std::size_t i = prefix.size(); i < name.size(); ++i) {
      if (name[i] == '_' && i + 1 < name.size() && name[i + 1] == '_') {
        key += '.';
        ++i;
      } else {
        key += static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
      }
    }
    if (key.empty()) {
      continue;
    }
    set(key, json::string(variable.substr(eq + 1)), std::string(name));
  }
}

void config::set(std::string_view key, json::value value, std::string origin) {
  const auto parts = split(key);
  json::object* object = &document_;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    auto& next = (*object)[parts[i]];
    if (!next.is_object()) {
      next = json::object();
    }
    object = &next.get_object();
  }
  (*object)[parts.back()] = std::move(value);
  if (!origin.empty()) {
    origins_[full_key(key)] = std::move(origin);
  }
}

bool config::contains(std::string_view key) const {
  if (!key.empty()) {
    asked_->values.insert(full_key(key));
  }
  return find(key) != nullptr;
}

const json::value* config::find(std::string_view key) const {
  if (key.empty()) {
    return nullptr;
  }
  return lookup(document_, split(key), 0);
}

std::string config::full_key(std::string_view key) const {
  return prefix_ + std::string(key);
}

std::string config::origin_of(std::string_view key) const {
  const auto it = origins_.find(full_key(key));
  return it != origins_.end() ? it->second : source_;
}

void config::fail(std::string_view key, const std::string& expected, const json::value& got) const {
  throw config_error(full_key(key), "key '" + full_key(key) + "' (from " + origin_of(key) +
                                        ") must be " + expected + ", got " + describe(got));
}

template <class T>
T config::get(std::string_view key) const {
  asked_->values.insert(full_key(key));
  const json::value* v = find(key);
  if (v == nullptr) {
    throw config_error(full_key(key), "missing key '" + full_key(key) + "' (in " + source_ + ")");
  }
  if constexpr (std::is_same_v<T, json::value>) {
    return *v;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (v->is_string()) {
      return std::string(v->get_string());
    }
    fail(key, "a string", *v);
  } else if constexpr (std::is_same_v<T, bool>) {
    if (v->is_bool()) {
      return v->get_bool();
    }
    if (v->is_string()) {
      const std::string_view s(v->get_string());
      if (s == "true" || s == "1" || s == "yes" || s == "on")
        return true;
      if (s == "false" || s == "0" || s == "no" || s == "off")
        return false;
    }
    fail(key, "a boolean", *v);
  } else if constexpr (std::is_same_v<T, double>) {
    if (v->is_number()) {
      return v->to_number<double>();
    }
    if (v->is_string()) {
      const std::string_view s(v->get_string());
      double d{};
      const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
      if (ec == std::errc{} && ptr == s.data() + s.size() && !s.empty()) {
        return d;
      }
    }
    fail(key, "a number", *v);
  } else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
    if (auto ms = to_milliseconds(*v)) {
      return *ms;
    }
    fail(key, "a duration (milliseconds, or a string like \"250ms\", \"2s\", \"5m\", \"1h\")", *v);
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    std::vector<std::string> out;
    if (v->is_array()) {
      for (const auto& item : v->get_array()) {
        if (!item.is_string()) {
          fail(key, "an array of strings", *v);
        }
        out.emplace_back(item.get_string());
      }
      return out;
    }
    if (v->is_string()) {  // "a,b,c" (environment overrides)
      return split_list(std::string_view(v->get_string()));
    }
    fail(key, "an array of strings", *v);
  } else {
    static_assert(std::is_integral_v<T>, "unsupported config type");
    if (auto i = to_integer<T>(*v)) {
      return *i;
    }
    fail(key, std::is_signed_v<T> ? "an integer in range" : "an unsigned integer in range", *v);
  }
}

template std::string config::get<std::string>(std::string_view) const;
template bool config::get<bool>(std::string_view) const;
template int config::get<int>(std::string_view) const;
template unsigned config::get<unsigned>(std::string_view) const;
template long config::get<long>(std::string_view) const;
template unsigned long config::get<unsigned long>(std::string_view) const;
template long long config::get<long long>(std::string_view) const;
template unsigned long long config::get<unsigned long long>(std::string_view) const;
template double config::get<double>(std::string_view) const;
template std::chrono::milliseconds config::get<std::chrono::milliseconds>(std::string_view) const;
template std::vector<std::string> config::get<std::vector<std::string>>(std::string_view) const;
template json::value config::get<json::value>(std::string_view) const;

config config::section(std::string_view key) const {
  config out;
  out.source_ = source_;
  out.prefix_ = full_key(key) + ".";
  out.origins_ = origins_;
  out.asked_ = asked_;
  asked_->sections.insert(full_key(key));
  if (const auto* v = find(key); v && v->is_object()) {
    out.document_ = v->get_object();
  } else if (v) {
    fail(key, "an object", *v);
  }
  return out;
}

std::vector<std::string> config::keys(std::string_view key) const {
  const json::object* object = &document_;
  if (!key.empty()) {
    const auto* v = find(key);
    if (v == nullptr || !v->is_object()) {
      return {};
    }
    object = &v->get_object();
  }
  std::vector<std::string> out;
  for (const auto& entry : *object) {
    out.emplace_back(entry.key());
  }
  return out;
}

void config::reject_unknown_keys(std::string_view key) const {
  const json::value* v = find(key);
  if (v != nullptr && v->is_object()) {
    check_known(full_key(key) + ".", v->get_object());
  }
}

void config::check_known(const std::string& prefix, const json::object& object) const {
  const auto asked_below = [&](const std::string& full) {
    const auto below = full + ".";
    const auto starts = [&](const std::set<std::string, std::less<>>& keys) {
      const auto it = keys.lower_bound(below);
      return it != keys.end() && it->compare(0, below.size(), below) == 0;
    };
    return asked_->sections.count(full) != 0 || starts(asked_->values) || starts(asked_->sections);
  };
  for (const auto& entry : object) {
    const std::string full = prefix + std::string(entry.key());
    if (asked_->values.count(full) != 0) {
      continue;
    }
    if (entry.value().is_object() && asked_below(full)) {
      check_known(full + ".", entry.value().get_object());
      continue;
    }
    // The known names at this level: the first segment below `prefix` of each asked key.
    std::vector<std::string> known;
    for (const auto* keys : {&asked_->values, &asked_->sections}) {
      for (auto it = keys->lower_bound(prefix);
           it != keys->end() && it->compare(0, prefix.size(), prefix) == 0; ++it) {
        known.push_back(it->substr(prefix.size(), it->find('.', prefix.size()) - prefix.size()));
      }
    }
    // Where the key came from: the environment variable that set it (or one below it).
    std::string origin = source_;
    for (auto it = origins_.lower_bound(full);
         it != origins_.end() && it->first.compare(0, full.size(), full) == 0; ++it) {
      origin = it->second;
      break;
    }
    std::string message = "unknown key '" + full + "' (in " + origin + ")";
    if (const auto near = nearest_key(std::string(entry.key()), known)) {
      message += "; did you mean '" + *near + "'?";
    } else if (!known.empty()) {
      std::sort(known.begin(), known.end());
      known.erase(std::unique(known.begin(), known.end()), known.end());
      message += "; known keys here:";
      for (const auto& k : known) {
        message += " " + k;
      }
    }
    throw config_error(full, message);
  }
}

}  // namespace corvo
