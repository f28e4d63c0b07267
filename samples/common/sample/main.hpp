#pragma once
// How every sample program's main() ends: the exit code from how the run ended (a
// corvo::run_result) and from the verdict of the program's own checks, and the one place
// that turns an escaped exception into "<program>: <what>" and exit code 1.
//
//   int main(int argc, char** argv) {
//     return corvo::samples::guarded_main("my_sample", [&] {
//       ...
//       std::optional<int> verdict;   // set by the program's checks (a demo, a self-test)
//       const auto result = app.run();
//       return corvo::samples::exit_code("my_sample", result, verdict, checking);
//     });
//   }

#include <corvo/core/runtime.hpp>
#include <exception>
#include <iostream>
#include <optional>
#include <string_view>

namespace corvo::samples {

/// The exit code of a sample program whose app or runtime returned `result`:
/// - deadline_exceeded: 2, whatever the verdict (the shutdown did not finish in time: said
///   on stderr);
/// - failed (the root threw): 1;
/// - otherwise the verdict, when the program's checks reached one (0 passed, non-zero
///   failed);
/// - no verdict: a program that was only serving (`checking` false) ends with
///   corvo::exit_code(result), 0; a program that was running its checks ends with 130 when it
///   was stopped before they finished (SIGINT/SIGTERM) and 1 when it ended without one.
inline int exit_code(std::string_view program, run_result result, std::optional<int> verdict,
                     bool checking) {
  if (result == run_result::deadline_exceeded) {
    std::cerr << program << ": did not stop within the shutdown deadline\n";
    return corvo::exit_code(result);
  }
  if (result == run_result::failed) {
    return corvo::exit_code(result);
  }
  if (verdict) {
    return *verdict;
  }
  if (!checking) {
    return corvo::exit_code(result);
  }
  return result == run_result::stopped ? 130 : 1;
}

/// Runs `body` (main()'s work, returning the exit code); an exception escaping it is printed
/// as "<program>: <what>" on stderr and gives exit code 1.
template <class Body>
int guarded_main(std::string_view program, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace corvo::samples
