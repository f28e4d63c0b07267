// Uses the installed corvo: compiles against its headers and links its library.
#include <corvo/core/error.hpp>

#include <iostream>

int main() {
  const auto ec = make_error_code(corvo::error::timed_out);
  if (ec.category().name() != std::string_view{"corvo"}) {
    return 1;
  }
  std::cout << "corvo consumer ok: " << ec.message() << "\n";
  return 0;
}
