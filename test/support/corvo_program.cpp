#include "support/corvo_program.hpp"

namespace corvo::test {

std::filesystem::path corvo_program() {
  const auto self = std::filesystem::read_symlink("/proc/self/exe");
  return self.parent_path().parent_path() / "tools" / "corvo";
}

}  // namespace corvo::test
