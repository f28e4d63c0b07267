#pragma once
// Subcommands of the `corvo` program. Each lives in its own file and registers itself with
// a namespace-scope `corvo::tool::registration`:
//
//   namespace {
//   int run_schedule(const std::vector<std::string>& args) { ... return 0; }
//   const corvo::tool::registration schedule{
//       {"schedule", "create, list and cancel delayed tasks", run_schedule}};
//   }
//
// `args` are the words after the subcommand's name. A subcommand prints its own usage for
// --help, writes results to stdout and diagnostics to stderr, and returns the exit code.

#include <string>
#include <string_view>
#include <vector>

namespace corvo::tool {

struct command {
  std::string_view name;
  std::string_view summary;
  int (*run)(const std::vector<std::string>& args);
};

/// Every registered subcommand, sorted by name.
std::vector<command> commands();

/// Registers a subcommand during static initialization.
class registration {
 public:
  explicit registration(command c);
};

}  // namespace corvo::tool
