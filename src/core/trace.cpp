#include <corvo/core/trace.hpp>
#include <stdexcept>

namespace corvo::trace {
namespace {

bool lower_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// "" when `part` is `size` lowercase hex digits, else why not.
std::string hex_problem(std::string_view part, std::size_t size, std::string_view name) {
  if (part.size() != size) {
    return std::string(name) + " must be " + std::to_string(size) + " hex digits";
  }
  for (const char c : part) {
    if (!lower_hex(c)) {
      return std::string(name) + " must be lowercase hex digits";
    }
  }
  return {};
}

bool all_zeros(std::string_view part) noexcept {
  return part.find_first_not_of('0') == std::string_view::npos;
}

}  // namespace

std::string traceparent_problem(std::string_view text) {
  if (text.size() != 55 || text[2] != '-' || text[35] != '-' || text[52] != '-') {
    return "expected version-traceid-parentid-flags (2-32-16-2 hex digits)";
  }
  const auto version = text.substr(0, 2);
  const auto trace_id = text.substr(3, 32);
  const auto parent_id = text.substr(36, 16);
  const auto flags = text.substr(53, 2);
  struct part_spec {
    std::string_view text;
    std::size_t size;
    const char* name;
  };
  const part_spec parts[] = {{version, 2, "the version"},
                             {trace_id, 32, "the trace id"},
                             {parent_id, 16, "the parent id"},
                             {flags, 2, "the flags"}};
  for (const auto& part : parts) {
    if (auto problem = hex_problem(part.text, part.size, part.name); !problem.empty()) {
      return problem;
    }
  }
  if (version == "ff") {
    return "version ff is invalid";
  }
  if (all_zeros(trace_id)) {
    return "the trace id is all zeros";
  }
  if (all_zeros(parent_id)) {
    return "the parent id is all zeros";
  }
  return {};
}

bool is_valid_traceparent(std::string_view text) noexcept {
  try {
    return traceparent_problem(text).empty();
  } catch (...) {
    return false;
  }
}

void check_traceparent(std::string_view text, std::string_view what) {
  if (text.empty()) {
    return;
  }
  if (auto problem = traceparent_problem(text); !problem.empty()) {
    throw std::invalid_argument(std::string(what) + ": invalid traceparent '" + std::string(text) +
                                "': " + problem);
  }
}

}  // namespace corvo::trace
