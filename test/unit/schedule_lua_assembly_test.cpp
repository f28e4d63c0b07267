// detail::assemble_script: a script keeps the library's definitions its body needs, directly
// or through other definitions, in the library's order, with their comments.
#include <boost/test/unit_test.hpp>
#include <corvo/schedule/detail/lua_assembly.hpp>
#include <string>

using corvo::schedule::detail::assemble_script;

namespace {

const std::string library = R"(-- the library's header (kept)
local function now_us()
  return redis.call('TIME')
end
-- Formats n.
local function fmt(n) return string.format('%.0f', n) end
local unused_a, shared_b = 1, 2
local function uses_b()
  -- mentions now_us in a comment line only
  return shared_b
end
local function stamp()
  local t = now_us()  -- a trailing comment naming uses_b keeps it too
  return fmt(t)
end
local function lonely() return 0 end
)";

}  // namespace

BOOST_AUTO_TEST_CASE(a_body_keeps_what_it_calls_and_what_those_call_in_order) {
  const auto script = assemble_script("local s = 1\n", library, "return stamp()\n");
  BOOST_TEST(script == std::string(R"(local s = 1
-- the library's header (kept)
local function now_us()
  return redis.call('TIME')
end
-- Formats n.
local function fmt(n) return string.format('%.0f', n) end
local unused_a, shared_b = 1, 2
local function uses_b()
  -- mentions now_us in a comment line only
  return shared_b
end
local function stamp()
  local t = now_us()  -- a trailing comment naming uses_b keeps it too
  return fmt(t)
end
return stamp()
)"));
}

BOOST_AUTO_TEST_CASE(a_body_that_calls_nothing_keeps_only_the_header) {
  BOOST_TEST(assemble_script("", library, "return 1\n") ==
             "-- the library's header (kept)\nreturn 1\n");
}

BOOST_AUTO_TEST_CASE(a_comment_line_does_not_keep_a_definition) {
  // uses_b names now_us only in a comment line: now_us stays out.
  BOOST_TEST(assemble_script("", library, "return uses_b()\n") ==
             std::string("-- the library's header (kept)\n"
                         "local unused_a, shared_b = 1, 2\n"
                         "local function uses_b()\n"
                         "  -- mentions now_us in a comment line only\n"
                         "  return shared_b\n"
                         "end\n"
                         "return uses_b()\n"));
}

BOOST_AUTO_TEST_CASE(every_name_of_a_multiple_definition_keeps_it) {
  BOOST_TEST(assemble_script("", library, "return unused_a\n") ==
             std::string("-- the library's header (kept)\n"
                         "local unused_a, shared_b = 1, 2\n"
                         "return unused_a\n"));
}
