#include "support/temp_dir.hpp"

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>

namespace corvo::test {

temp_dir::temp_dir(std::string_view tag) {
  std::filesystem::path root = std::filesystem::temp_directory_path();
  if (const char* configured = std::getenv("CORVO_TEST_TMPDIR"); configured && *configured) {
    root = configured;
  }
  std::filesystem::create_directories(root);
  std::string pattern = (root / (std::string{tag} + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("temp_dir: cannot create a directory under " + root.string());
  }
  path_ = pattern;
}

temp_dir::~temp_dir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace corvo::test
