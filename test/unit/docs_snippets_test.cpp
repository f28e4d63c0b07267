// The doc test's other half: every C++ block in README.md and docs/*.md quotes, verbatim, a
// program the install.find_package test builds against the installed package (and runs
// when it needs no server). A block is preceded by its source:
//   <!-- verbatim: samples/hello_scheduler/main.cpp -->          the whole file
//   <!-- verbatim: docs/examples/scheduler_calls.cpp [calls] -->  the lines between
//                                                                 `// [calls]` and `// [/calls]`
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace {

const fs::path root = CORVO_SOURCE_DIR;

std::vector<std::string> lines_of(const fs::path& path) {
  std::ifstream in(path);
  BOOST_REQUIRE_MESSAGE(in, "cannot read " << path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

std::string joined(const std::vector<std::string>& lines, std::size_t from, std::size_t to) {
  std::string out;
  for (auto i = from; i < to; ++i) {
    out += lines[i] + "\n";
  }
  return out;
}

// The text a marker names, or an error message.
std::string quoted_source(const std::string& marker, std::string& error) {
  const std::string head = "<!-- verbatim: ";
  auto spec = marker.substr(head.size(), marker.rfind(" -->") - head.size());
  std::string region;
  if (const auto space = spec.find(" ["); space != std::string::npos) {
    region = spec.substr(space + 2, spec.size() - space - 3);
    spec = spec.substr(0, space);
  }
  if (!fs::exists(root / spec)) {
    error = "names a missing file " + spec;
    return {};
  }
  const auto lines = lines_of(root / spec);
  if (region.empty()) {
    return joined(lines, 0, lines.size());
  }
  std::size_t begin = lines.size(), end = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find("// [" + region + "]") != std::string::npos)
      begin = i + 1;
    if (lines[i].find("// [/" + region + "]") != std::string::npos)
      end = i;
  }
  if (begin >= end) {
    error = "names a region [" + region + "] that " + spec + " does not mark";
    return {};
  }
  // The region as the docs show it: without the indentation it has in the function.
  std::size_t indent = std::string::npos;
  for (auto i = begin; i < end; ++i) {
    if (!lines[i].empty())
      indent = std::min(indent, lines[i].find_first_not_of(' '));
  }
  std::vector<std::string> dedented;
  for (auto i = begin; i < end; ++i) {
    dedented.push_back(lines[i].size() >= indent ? lines[i].substr(indent) : lines[i]);
  }
  return joined(dedented, 0, dedented.size());
}

struct block_report {
  std::size_t quoted = 0;
  std::vector<std::string> unquoted;  // "file:line"
};

block_report check(const fs::path& doc) {
  block_report report;
  const auto lines = lines_of(doc);
  const auto name = fs::relative(doc, root).string();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] != "```cpp")
      continue;
    std::size_t end = i + 1;
    while (end < lines.size() && lines[end] != "```")
      ++end;
    const auto block = joined(lines, i + 1, end);
    const std::string where = name + ":" + std::to_string(i + 1);
    if (i == 0 || lines[i - 1].rfind("<!-- verbatim: ", 0) != 0) {
      report.unquoted.push_back(where);
    } else {
      std::string error;
      const auto source = quoted_source(lines[i - 1], error);
      BOOST_TEST_CONTEXT(where) {
        BOOST_TEST(error.empty(), error);
        BOOST_TEST(block == source, "the block differs from its source; copy the file");
      }
      ++report.quoted;
    }
    i = end;
  }
  return report;
}

}  // namespace

BOOST_AUTO_TEST_CASE(cpp_blocks_quote_compiled_programs) {
  std::vector<fs::path> docs{root / "README.md"};
  for (const auto& entry : fs::directory_iterator(root / "docs")) {
    if (entry.path().extension() == ".md")
      docs.push_back(entry.path());
  }
  std::size_t quoted = 0;
  for (const auto& doc : docs) {
    const auto report = check(doc);
    quoted += report.quoted;
    const auto name = fs::relative(doc, root).string();
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(report.unquoted.empty(),
                 "C++ blocks without a verbatim marker (not compiled): "
                     << report.unquoted.size() << ", first at "
                     << (report.unquoted.empty() ? "" : report.unquoted.front()));
    }
  }
  // docs/scheduler.md 2, README 3, docs/kafka.md 4, docs/redis-cluster.md 1.
  BOOST_TEST(quoted >= 10u);
}
