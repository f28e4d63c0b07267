#include <algorithm>
#include <charconv>
#include <cmath>
#include <corvo/core/log.hpp>
#include <corvo/ops/metrics.hpp>
#include <exception>
#include <stdexcept>
#include <variant>

namespace corvo::ops {

namespace {

bool valid_name(std::string_view name, bool colon_allowed) {
  if (name.empty()) {
    return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (colon_allowed && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) {
      return false;
    }
  }
  return true;
}

label_set sorted(const label_set& labels) {
  label_set out = labels;
  std::sort(out.begin(), out.end());
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!valid_name(out[i].first, false) || out[i].first.starts_with("__")) {
      throw std::invalid_argument("metrics: invalid label name '" + out[i].first + "'");
    }
    if (out[i].first == "le") {
      throw std::invalid_argument("metrics: the label name 'le' is reserved");
    }
    if (i > 0 && out[i - 1].first == out[i].first) {
      throw std::invalid_argument("metrics: label '" + out[i].first + "' given twice");
    }
  }
  return out;
}

std::string escape_help(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void write_labels(std::string& out, const label_set& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr) {
    return;
  }
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) {
      out += ',';
    }
    first = false;
    out += k;
    out += "=\"";
    out += escape_label_value(v);
    out += '"';
  }
  if (le != nullptr) {
    if (!first) {
      out += ',';
    }
    out += "le=\"";
    out += *le;
    out += '"';
  }
  out += '}';
}

std::string_view type_name(metric_type t) {
  switch (t) {
    case metric_type::counter:
      return "counter";
    case metric_type::gauge:
      return "gauge";
    case metric_type::histogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string escape_label_value(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return std::string(buffer, end);
}

histogram::histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end()) {
    throw std::invalid_argument("metrics: histogram bounds must be strictly ascending");
  }
  if (!bounds_.empty() && std::isinf(bounds_.back())) {
    bounds_.pop_back();  // +Inf is implicit
  }
  counts_.assign(bounds_.size() + 1, 0);
}

void histogram::observe(double v) noexcept {
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);  // first bound >= v
  ++counts_[static_cast<std::size_t>(it - bounds_.begin())];
  ++count_;
  sum_ += v;
}

void histogram::set_counts(std::span<const std::uint64_t> counts, double sum) {
  if (counts.size() != counts_.size()) {
    throw std::invalid_argument("metrics: histogram counts do not match its buckets");
  }
  counts_.assign(counts.begin(), counts.end());
  count_ = 0;
  for (auto c : counts_) {
    count_ += c;
  }
  sum_ = sum;
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

struct registry::family {
  std::string name;
  std::string help;
  metric_type type;
  std::vector<double> bounds;
  std::map<label_set, std::variant<ops::counter, ops::gauge, ops::histogram>> series;
};

registry::registry() = default;
registry::~registry() = default;

registry::family& registry::family_of(std::string_view name, std::string_view help,
                                      metric_type type, const std::vector<double>* bounds) {
  if (auto it = families_.find(name); it != families_.end()) {
    family& f = *it->second;
    if (f.type != type) {
      throw std::invalid_argument("metrics: '" + f.name + "' is already a " +
                                  std::string(type_name(f.type)));
    }
    if (f.help != help) {
      throw std::invalid_argument("metrics: '" + f.name + "' registered with another help text");
    }
    if (bounds != nullptr && ops::histogram(*bounds).bounds() != f.bounds) {
      throw std::invalid_argument("metrics: '" + f.name + "' registered with other buckets");
    }
    return f;
  }
  if (!valid_name(name, true)) {
    throw std::invalid_argument("metrics: invalid metric name '" + std::string(name) + "'");
  }
  auto f = std::make_unique<family>();
  f->name = std::string(name);
  f->help = std::string(help);
  f->type = type;
  if (bounds != nullptr) {
    f->bounds = ops::histogram(*bounds).bounds();
  }
  return *families_.emplace(f->name, std::move(f)).first->second;
}

ops::counter& registry::counter(std::string_view name, std::string_view help,
                                const label_set& labels) {
  family& f = family_of(name, help, metric_type::counter, nullptr);
  return std::get<ops::counter>(f.series.try_emplace(sorted(labels), ops::counter{}).first->second);
}

ops::gauge& registry::gauge(std::string_view name, std::string_view help, const label_set& labels) {
  family& f = family_of(name, help, metric_type::gauge, nullptr);
  return std::get<ops::gauge>(f.series.try_emplace(sorted(labels), ops::gauge{}).first->second);
}

ops::histogram& registry::histogram(std::string_view name, std::string_view help,
                                    const std::vector<double>& bounds, const label_set& labels) {
  family& f = family_of(name, help, metric_type::histogram, &bounds);
  auto key = sorted(labels);
  auto it = f.series.find(key);
  if (it == f.series.end()) {
    it = f.series.emplace(std::move(key), ops::histogram(f.bounds)).first;
  }
  return std::get<ops::histogram>(it->second);
}

void registry::add_collector(std::function<void()> collect) {
  collectors_.push_back(std::move(collect));
}

void registry::add_async_collector(std::function<asio::awaitable<void>()> collect) {
  async_collectors_.push_back(std::move(collect));
}

asio::awaitable<void> registry::collect() {
  for (auto& c : async_collectors_) {
    try {
      co_await c();
    } catch (const std::exception& e) {
      CORVO_LOG(warning, "ops") << "metrics collector failed: " << e.what();
      counter("corvo_ops_collector_errors_total", "Metric collectors that failed during a scrape")
          .inc();
    }
  }
}

std::string registry::render() {
  for (auto& c : collectors_) {
    c();
  }
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + ' ' + escape_help(f->help) + '\n';
    out += "# TYPE " + name + ' ' + std::string(type_name(f->type)) + '\n';
    for (const auto& [labels, s] : f->series) {
      if (const auto* c = std::get_if<ops::counter>(&s)) {
        out += name;
        write_labels(out, labels);
        out += ' ' + format_value(c->value()) + '\n';
      } else if (const auto* g = std::get_if<ops::gauge>(&s)) {
        out += name;
        write_labels(out, labels);
        out += ' ' + format_value(g->value()) + '\n';
      } else if (const auto* h = std::get_if<ops::histogram>(&s)) {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i <= h->bounds().size(); ++i) {
          cumulative += h->bucket_counts()[i];
          std::string le = i < h->bounds().size() ? format_value(h->bounds()[i]) : "+Inf";
          out += name + "_bucket";
          write_labels(out, labels, &le);
          out += ' ' + std::to_string(cumulative) + '\n';
        }
        out += name + "_sum";
        write_labels(out, labels);
        out += ' ' + format_value(h->sum()) + '\n';
        out += name + "_count";
        write_labels(out, labels);
        out += ' ' + std::to_string(h->count()) + '\n';
      }
    }
  }
  return out;
}

double registry::value(std::string_view name, const label_set& labels) const {
  auto it = families_.find(name);
  if (it == families_.end()) {
    return -1;
  }
  auto s = it->second->series.find(sorted(labels));
  if (s == it->second->series.end()) {
    return -1;
  }
  if (const auto* c = std::get_if<ops::counter>(&s->second)) {
    return c->value();
  }
  if (const auto* g = std::get_if<ops::gauge>(&s->second)) {
    return g->value();
  }
  return static_cast<double>(std::get<ops::histogram>(s->second).count());
}

}  // namespace corvo::ops
