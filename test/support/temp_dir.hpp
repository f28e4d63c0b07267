#pragma once
// A private directory for one test's files (server configs, data, certificates), removed
// when the owner goes away.

#include <filesystem>
#include <string_view>

namespace corvo::test {

/// A fresh directory under $CORVO_TEST_TMPDIR (or the system temp dir), named after `tag`.
/// Removed with its contents on destruction. Not copyable.
class temp_dir {
 public:
  explicit temp_dir(std::string_view tag);
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace corvo::test
