#include <algorithm>
#include <corvo/redis/resp3/detail/numbers.hpp>
#include <corvo/redis/resp3/parser.hpp>
#include <cstring>

namespace corvo::redis::resp3 {
namespace {

constexpr std::size_t unbounded = static_cast<std::size_t>(-1);

// Longest valid line after the type byte for types whose line is a number or a fixed
// token. A longer run without CR is rejected at once instead of buffering it: the longest
// int64 is "-9223372036854775808" (20 bytes), plus room for a '+'.
constexpr std::size_t max_line_length(type t) noexcept {
  switch (t) {
    case type::null:
      return 0;
    case type::boolean:
      return 1;
    case type::integer:
    case type::bulk_string:
    case type::bulk_error:
    case type::verbatim_string:
    case type::array:
    case type::map:
    case type::set:
    case type::attribute:
    case type::push:
      return 21;
    default:
      return unbounded;
  }
}

constexpr error overlong_line_error(type t) noexcept {
  switch (t) {
    case type::null:
      return error::missing_crlf;
    case type::boolean:
      return error::invalid_boolean;
    case type::integer:
      return error::invalid_integer;
    default:
      return error::invalid_length;
  }
}

}  // namespace

std::string_view to_string(type t) noexcept {
  switch (t) {
    case type::simple_string:
      return "simple_string";
    case type::simple_error:
      return "simple_error";
    case type::integer:
      return "integer";
    case type::double_:
      return "double";
    case type::boolean:
      return "boolean";
    case type::big_number:
      return "big_number";
    case type::null:
      return "null";
    case type::bulk_string:
      return "bulk_string";
    case type::bulk_error:
      return "bulk_error";
    case type::verbatim_string:
      return "verbatim_string";
    case type::array:
      return "array";
    case type::map:
      return "map";
    case type::set:
      return "set";
    case type::attribute:
      return "attribute";
    case type::push:
      return "push";
  }
  return "invalid";
}

parser::parser(const parser_limits& limits) noexcept : limits_(limits) {
  limits_.max_depth = std::min(limits_.max_depth, parser_limits::depth_capacity);
}

void parser::reset() noexcept {
  pos_ = 0;
  line_scan_ = 0;
  depth_ = 0;
  done_ = false;
  root_seen_ = false;
  root_type_ = type::null;
  failed_ = false;
}

std::optional<node_view> parser::fail(error e, boost::system::error_code& ec) noexcept {
  failed_ = true;
  error_ = e;
  ec = e;
  return std::nullopt;
}

void parser::finish_element() noexcept {
  while (depth_ > 0) {
    frame& top = stack_[depth_ - 1];
    if (--top.remaining > 0) {
      return;
    }
    --depth_;
    if (top.attribute) {
      // The attribute is done; the value it describes is still to come at this depth.
      return;
    }
  }
  done_ = true;
}

std::optional<node_view> parser::next(std::string_view message,
                                      boost::system::error_code& ec) noexcept {
  if (failed_) {
    ec = error_;
    return std::nullopt;
  }
  if (done_) {
    return std::nullopt;
  }
  const char* const data = message.data();
  const std::size_t size = message.size();

  // While the message is incomplete every byte in `message` belongs to it, so a buffer
  // beyond the limit means the message is too.
  auto need_more = [&]() -> std::optional<node_view> {
    if (size > limits_.max_message_size) {
      return fail(error::message_too_large, ec);
    }
    return std::nullopt;
  };

  if (pos_ >= size) {
    return need_more();
  }
  type t;
  if (!type_from_byte(data[pos_], t)) {
    return fail(error::invalid_type_byte, ec);
  }

  // The header line: type byte, then up to CRLF.
  const std::size_t scan_from = std::max(line_scan_, pos_ + 1);
  const void* cr =
      scan_from < size ? std::memchr(data + scan_from, '\r', size - scan_from) : nullptr;
  // A line longer than its type allows. Arriving one byte at a time, the buffer would
  // reveal that once it held pos_ + max_line_length(t) + 2 bytes, but it would have broken
  // the message size limit first if that is smaller: report whichever comes first, so the
  // error does not depend on how the input was split into reads.
  auto overlong_line = [&]() -> std::optional<node_view> {
    if (limits_.max_message_size < pos_ + max_line_length(t) + 1) {
      return fail(error::message_too_large, ec);
    }
    return fail(overlong_line_error(t), ec);
  };
  if (cr == nullptr) {
    line_scan_ = size;
    if (size - pos_ - 1 > max_line_length(t)) {
      return overlong_line();
    }
    return need_more();
  }
  const std::size_t cr_pos = static_cast<std::size_t>(static_cast<const char*>(cr) - data);
  // The checks come in the order in which bytes arriving one at a time would trigger
  // them, so the error does not depend on how the input was split into reads.
  if (cr_pos - pos_ - 1 > max_line_length(t)) {
    return overlong_line();
  }
  std::size_t end = cr_pos + 2;  // of this node, once known
  if (end > limits_.max_message_size) {
    return fail(error::message_too_large, ec);
  }
  if (cr_pos + 1 >= size) {
    line_scan_ = cr_pos;
    return need_more();
  }
  if (data[cr_pos + 1] != '\n') {
    return fail(error::missing_crlf, ec);
  }
  const std::string_view line(data + pos_ + 1, cr_pos - pos_ - 1);

  node_view node{t, 1, depth_, {}};
  switch (t) {
    case type::simple_string:
    case type::simple_error:
      node.value = line;
      break;
    case type::integer: {
      std::int64_t v;
      if (!detail::parse_int64(line, v)) {
        return fail(error::invalid_integer, ec);
      }
      node.value = line;
      break;
    }
    case type::double_: {
      double v;
      if (!detail::parse_double(line, v)) {
        return fail(error::invalid_double, ec);
      }
      node.value = line;
      break;
    }
    case type::boolean:
      if (line != "t" && line != "f") {
        return fail(error::invalid_boolean, ec);
      }
      node.value = line;
      break;
    case type::big_number:
      if (!detail::is_big_number(line)) {
        return fail(error::invalid_big_number, ec);
      }
      node.value = line;
      break;
    case type::null:
      if (!line.empty()) {
        return fail(error::missing_crlf, ec);
      }
      break;
    case type::bulk_string:
    case type::bulk_error:
    case type::verbatim_string: {
      if (line == "?") {
        return fail(error::streamed_type_unsupported, ec);
      }
      if (t == type::bulk_string && line == "-1") {
        node.data_type = type::null;  // RESP2 null bulk string
        break;
      }
      std::uint64_t length;
      if (!detail::parse_length(line, length)) {
        return fail(error::invalid_length, ec);
      }
      if (length > limits_.max_bulk_length) {
        return fail(error::bulk_too_large, ec);
      }
      // end + length + 2 <= max_message_size, written so that nothing overflows.
      const std::size_t room = limits_.max_message_size - end;
      if (length > room || room - length < 2) {
        return fail(error::message_too_large, ec);
      }
      const std::size_t payload = end;
      end = payload + static_cast<std::size_t>(length);
      if (size < end + 2) {
        line_scan_ = cr_pos;  // the header is complete: do not rescan it
        return need_more();
      }
      if (data[end] != '\r' || data[end + 1] != '\n') {
        return fail(error::missing_crlf, ec);
      }
      node.value = std::string_view(data + payload, static_cast<std::size_t>(length));
      if (t == type::verbatim_string && (length < 4 || node.value[3] != ':')) {
        return fail(error::invalid_verbatim_string, ec);
      }
      end += 2;
      break;
    }
    case type::array:
    case type::map:
    case type::set:
    case type::attribute:
    case type::push: {
      if (line == "?") {
        return fail(error::streamed_type_unsupported, ec);
      }
      if (t == type::array && line == "-1") {
        node.data_type = type::null;  // RESP2 null array
        break;
      }
      std::uint64_t count;
      if (!detail::parse_length(line, count)) {
        return fail(error::invalid_length, ec);
      }
      if (count > limits_.max_aggregate_size) {
        return fail(error::aggregate_too_large, ec);
      }
      // Every child takes at least 3 bytes ("_\r\n"): reject what cannot fit now rather
      // than buffer up to the limit first.
      const std::size_t multiplicity = element_multiplicity(t);
      if (count > (limits_.max_message_size - end) / (3 * multiplicity)) {
        return fail(error::message_too_large, ec);
      }
      node.aggregate_size = static_cast<std::size_t>(count);
      if (count > 0) {
        if (depth_ >= limits_.max_depth) {
          return fail(error::nesting_too_deep, ec);
        }
        stack_[depth_++] = frame{count * multiplicity, t == type::attribute};
        pos_ = end;
        line_scan_ = end;
        if (node.depth == 0 && t != type::attribute && !root_seen_) {
          root_seen_ = true;
          root_type_ = t;
        }
        return node;
      }
      if (t == type::attribute) {
        // An empty attribute is not an element: the described value follows.
        pos_ = end;
        line_scan_ = end;
        return node;
      }
      break;
    }
  }

  pos_ = end;
  line_scan_ = end;
  if (node.depth == 0 && !root_seen_) {
    root_seen_ = true;
    root_type_ = node.data_type;
  }
  finish_element();
  return node;
}

}  // namespace corvo::redis::resp3
