#pragma once
// Where the tests find the `corvo` command-line program.

#include <filesystem>

namespace corvo::test {

/// The `corvo` program built next to the tests (<build>/tools/corvo), found from the
/// running test executable (<build>/test/NAME).
std::filesystem::path corvo_program();

}  // namespace corvo::test
