// The `corvo` command-line program: `corvo <command> [arguments]`.
//
// main() only dispatches: the subcommands (`corvo kafka ...`, and later `corvo schedule`,
// `corvo dead`, `corvo stats`) live in their own files and register themselves through
// command.hpp.

#include "command.hpp"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

namespace corvo::tool {
namespace {

// A function-local static: registrations run during static initialization, in any order.
std::vector<command>& registry() {
  static std::vector<command> all;
  return all;
}

void print_usage(std::ostream& out) {
  out << "usage: corvo <command> [arguments]   (corvo <command> --help for more)\n\n"
         "commands:\n";
  for (const auto& c : commands()) {
    out << "  " << c.name << std::string(c.name.size() < 10 ? 10 - c.name.size() : 1, ' ')
        << c.summary << "\n";
  }
}

}  // namespace

std::vector<command> commands() {
  auto all = registry();
  std::sort(all.begin(), all.end(),
            [](const command& a, const command& b) { return a.name < b.name; });
  return all;
}

registration::registration(command c) {
  registry().push_back(c);
}

}  // namespace corvo::tool

int main(int argc, char** argv) {
  using namespace corvo::tool;
  const std::vector<std::string> words(argv + 1, argv + argc);
  if (words.empty() || words[0] == "--help" || words[0] == "-h" || words[0] == "help") {
    print_usage(words.empty() ? std::cerr : std::cout);
    return words.empty() ? 2 : 0;
  }
  for (const auto& c : commands()) {
    if (c.name == words[0]) {
      try {
        return c.run(std::vector<std::string>(words.begin() + 1, words.end()));
      } catch (const std::exception& e) {
        std::cerr << "corvo " << words[0] << ": " << e.what() << "\n";
        return 1;
      }
    }
  }
  std::cerr << "corvo: unknown command '" << words[0] << "'\n\n";
  print_usage(std::cerr);
  return 2;
}
