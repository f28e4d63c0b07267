// See include/corvo/schedule/detail/lua_assembly.hpp.

#include <cctype>
#include <corvo/schedule/detail/lua_assembly.hpp>
#include <set>
#include <vector>

namespace corvo::schedule::detail {

namespace {

bool identifier_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_';
}

bool identifier_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

// Adds the identifiers of `line` to `out`.
void add_identifiers(std::string_view line, std::set<std::string, std::less<>>& out) {
  std::size_t i = 0;
  while (i < line.size()) {
    if (!identifier_start(line[i])) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < line.size() && identifier_char(line[end])) {
      ++end;
    }
    out.emplace(line.substr(i, end - i));
    i = end;
  }
}

bool comment_line(std::string_view line) {
  const auto first = line.find_first_not_of(" \t");
  return first != std::string_view::npos && line.substr(first, 2) == "--";
}

// The names a definition's first line defines: after `local function`, or the list after
// `local` up to `=` (or the end of the line).
std::set<std::string, std::less<>> defined_names(std::string_view line) {
  std::set<std::string, std::less<>> out;
  line.remove_prefix(6);  // "local "
  if (line.substr(0, 9) == "function ") {
    line.remove_prefix(9);
    std::size_t end = 0;
    while (end < line.size() && identifier_char(line[end])) {
      ++end;
    }
    out.emplace(line.substr(0, end));
    return out;
  }
  add_identifiers(line.substr(0, line.find('=')), out);
  return out;
}

struct definition {
  std::string text;
  std::set<std::string, std::less<>> defines;
  std::set<std::string, std::less<>> uses;
};

}  // namespace

std::string assemble_script(std::string_view settings, std::string_view library,
                            std::string_view body) {
  std::string head;  // lines before the first definition
  std::vector<definition> definitions;
  std::string comments;  // comment lines waiting for the definition they precede
  bool started = false;
  while (!library.empty()) {
    const auto newline = library.find('\n');
    const auto line =
        library.substr(0, newline == std::string_view::npos ? library.size() : newline + 1);
    library.remove_prefix(line.size());
    if (line.substr(0, 6) == "local ") {
      started = true;
      definition d;
      d.text = std::move(comments) + std::string(line);
      comments.clear();
      d.defines = defined_names(line);
      add_identifiers(line, d.uses);
      definitions.push_back(std::move(d));
    } else if (started && line.substr(0, 2) == "--") {
      comments += line;  // column 0: documents the next definition
    } else if (!started) {
      head += line;
    } else {
      auto& current = definitions.back();
      current.text += std::move(comments);
      comments.clear();
      current.text += line;
      if (!comment_line(line)) {
        add_identifiers(line, current.uses);
      }
    }
  }
  std::set<std::string, std::less<>> needed;
  add_identifiers(body, needed);
  std::vector<bool> kept(definitions.size(), false);
  for (bool grew = true; grew;) {
    grew = false;
    for (std::size_t i = 0; i < definitions.size(); ++i) {
      if (kept[i]) {
        continue;
      }
      for (const auto& name : definitions[i].defines) {
        if (needed.count(name) != 0) {
          kept[i] = true;
          grew = true;
          needed.insert(definitions[i].uses.begin(), definitions[i].uses.end());
          break;
        }
      }
    }
  }
  std::string out(settings);
  out += head;
  for (std::size_t i = 0; i < definitions.size(); ++i) {
    if (kept[i]) {
      out += definitions[i].text;
    }
  }
  out += comments;
  out += body;
  return out;
}

}  // namespace corvo::schedule::detail
