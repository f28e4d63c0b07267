// libFuzzer target for the RESP3 parser, framer and adapters (built by scripts/fuzz; no
// Asio, no I/O). Besides "no crash, no sanitizer report", it checks properties that would
// reveal a wrong parse rather than a crashing one:
//  - framing the input in arbitrary chunks (with a moving buffer, like a connection) gives
//    exactly the messages and the error of framing it in one piece;
//  - every framed message re-parses into the same number of bytes, no node is deeper than
//    the depth limit, and typed and generic adapters accept it without a protocol error.
//
// Input layout: byte 0 picks the limits, byte 1 seeds the chunk sizes, the rest is the
// byte stream from the "server".

#include <corvo/redis/adapter.hpp>
#include <corvo/redis/resp3/framer.hpp>
#include <corvo/redis/resp3/parser.hpp>
#include <corvo/redis/response.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace resp3 = corvo::redis::resp3;
namespace redis = corvo::redis;

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "resp3 fuzz property violated: %s\n", what);
    std::abort();
  }
}

struct outcome {
  std::vector<std::string> messages;
  std::vector<bool> pushes;
  boost::system::error_code ec;
};

outcome frame_whole(std::string_view wire, const resp3::parser_limits& limits) {
  outcome out;
  resp3::framer framer(limits);
  while (auto msg = framer.next(wire, out.ec)) {
    out.messages.emplace_back(msg->data);
    out.pushes.push_back(msg->is_push());
    wire.remove_prefix(msg->size());
  }
  return out;
}

outcome frame_chunked(std::string_view wire, const resp3::parser_limits& limits,
                      std::uint32_t seed) {
  outcome out;
  resp3::framer framer(limits);
  std::string buffer;
  std::size_t fed = 0;
  for (;;) {
    auto msg = framer.next(buffer, out.ec);
    if (out.ec) {
      return out;
    }
    if (msg) {
      out.messages.emplace_back(msg->data);
      out.pushes.push_back(msg->is_push());
      buffer.erase(0, msg->size());
      continue;
    }
    if (fed == wire.size()) {
      return out;
    }
    seed = seed * 1103515245u + 12345u;
    const std::size_t chunk = 1 + (seed >> 16) % 17;
    const std::size_t n = std::min(chunk, wire.size() - fed);
    buffer.append(wire.substr(fed, n));
    // Move the buffer now and then, so a stale pointer into it would be caught by ASan.
    if ((seed & 3) == 0) {
      buffer = std::string(buffer.begin(), buffer.end());
    }
    fed += n;
  }
}

void adapt_message(std::string_view message, const resp3::parser_limits& limits) {
  std::size_t nodes = 0;
  boost::system::error_code ec;
  const std::size_t size = resp3::parse(
      message,
      [&](const resp3::node_view& n) {
        ++nodes;
        check(n.depth <= limits.max_depth, "node deeper than max_depth");
      },
      ec);
  check(!ec, "a framed message does not re-parse");
  check(size == message.size(), "re-parse consumed a different size");
  check(nodes > 0, "a message without nodes");

  // Typed adapters must turn anything into a value or a reply error, never a protocol
  // error, and a generic response keeps one node per node.
  redis::response<std::string, std::vector<std::optional<std::string>>,
                  std::map<std::string, std::vector<resp3::node>>,
                  std::tuple<std::int64_t, double, bool>,
                  std::vector<std::pair<std::string, redis::result<double>>>, redis::ignore_t>
      typed;
  redis::any_adapter adapter(typed);
  for (std::size_t i = 0; i < adapter.size(); ++i) {
    adapter.deliver(i, message, ec);
    check(!ec, "an adapter reported a protocol error on a framed message");
  }
  redis::generic_response generic;
  redis::any_adapter(generic).deliver(0, message, ec);
  check(!ec, "the generic adapter reported a protocol error");
  check(generic.size() == nodes, "the generic adapter lost or invented nodes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  resp3::parser_limits limits;
  // Small limits half of the time, so the limit paths are reached with small inputs.
  if (data[0] & 1) {
    limits.max_depth = 1 + (data[0] >> 1) % 8;
    limits.max_bulk_length = 16;
    limits.max_aggregate_size = 8;
    limits.max_message_size = 256;
  }
  const std::uint32_t seed = data[1];
  const std::string_view wire(reinterpret_cast<const char*>(data + 2), size - 2);

  const outcome whole = frame_whole(wire, limits);
  const outcome chunked = frame_chunked(wire, limits, seed);
  check(whole.ec == chunked.ec, "chunked framing ended with a different error");
  check(whole.messages == chunked.messages, "chunked framing found different messages");
  check(whole.pushes == chunked.pushes, "chunked framing classified pushes differently");

  std::size_t total = 0;
  for (const std::string& m : whole.messages) {
    total += m.size();
    check(m.size() <= limits.max_message_size, "message larger than max_message_size");
    adapt_message(m, limits);
  }
  check(total <= wire.size(), "framed more bytes than given");
  return 0;
}
