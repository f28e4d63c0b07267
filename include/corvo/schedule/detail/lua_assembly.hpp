#pragma once
// Assembles the Redis store's Lua scripts from the shared library of helpers (the prelude and
// the deduplication and limit helpers) and a script's body, keeping only the helpers the body
// needs. Redis runs a script's whole text on every call, so each helper defined costs every
// call a closure (about 0.1 µs each): a claim or an ack that defined all of them paid for
// dozens it never calls.

#include <string>
#include <string_view>

namespace corvo::schedule::detail {

/// `settings`, then the top-level definitions of `library` that `body` uses, directly or
/// through other definitions, in their order in `library`, then `body`.
///
/// A top-level definition starts at a line beginning with `local ` (`local function f(` or
/// `local a, b = …`), with the comment lines just above it, and runs to the next one; it
/// defines the names after `local` (or `local function`) and uses every identifier in its
/// lines that are not comment lines. A definition is kept when it defines a name the body or
/// a kept definition uses, so a name mentioned only in a string or a trailing comment keeps
/// a helper it need not: never the other way round. Lines of `library` before its first
/// definition are kept.
std::string assemble_script(std::string_view settings, std::string_view library,
                            std::string_view body);

}  // namespace corvo::schedule::detail
