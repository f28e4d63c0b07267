#include <corvo/redis/cluster/slot.hpp>
#include <corvo/redis/script.hpp>
#include <corvo/stream/admin.hpp>
#include <stdexcept>

#include "reply_tree.hpp"
#include "scripts.hpp"

namespace corvo::stream {
namespace {

using detail::reply_tree;
using detail::to_unsigned;
using nodes = std::vector<redis::resp3::node>;

class admin_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "corvo.stream.admin"; }
  std::string message(int value) const override {
    switch (static_cast<admin_error>(value)) {
      case admin_error::no_such_stream:
        return "no such stream";
      case admin_error::wrong_type:
        return "the key is not a stream";
      case admin_error::no_such_group:
        return "no such consumer group";
      case admin_error::bad_id:
        return "not a stream id";
      case admin_error::cross_slot:
        return "keys in different hash slots";
    }
    return "unknown stream admin error " + std::to_string(value);
  }
};

[[noreturn]] void fail(admin_error e, const std::string& what) {
  throw boost::system::system_error(e, what);
}

const redis::script& replay_script() {
  static const redis::script script(detail::lua::replay);
  return script;
}

const redis::script& purge_script() {
  static const redis::script script(std::string(detail::lua::ids) + detail::lua::purge);
  return script;
}

// The TYPE reply of a stream command's pipeline: throws for a missing key (when
// `missing_ok` is false) or another type; false when missing.
bool check_stream_type(const redis::result<std::string>& type, const std::string& key,
                       bool missing_ok = false) {
  const auto& kind = type.value();
  if (kind == "none") {
    if (missing_ok) {
      return false;
    }
    fail(admin_error::no_such_stream, "stream '" + key + "' does not exist");
  }
  if (kind != "stream") {
    fail(admin_error::wrong_type, "key '" + key + "' holds a " + kind + ", not a stream");
  }
  return true;
}

// The value of a command's slot; a NOGROUP error becomes admin_error::no_such_group.
const nodes& value_of(const redis::result<nodes>& slot, const std::string& stream,
                      const std::string& group) {
  if (slot.has_error() && slot.error().message.starts_with("NOGROUP")) {
    fail(admin_error::no_such_group,
         "stream '" + stream + "' has no consumer group '" + group + "'");
  }
  return slot.value();
}

std::string checked_id(std::string_view id, bool allow_bounds = false) {
  if (allow_bounds && (id == "-" || id == "+")) {
    return std::string(id);
  }
  auto normal = normalize_id(id);
  if (!normal) {
    fail(admin_error::bad_id, "'" + std::string(id) + "' is not a stream id");
  }
  return *normal;
}

group_info to_group(const reply_tree& g) {
  group_info out;
  out.name = g.text_of("name");
  out.consumers = g.number_of("consumers").value_or(0);
  out.pending = g.number_of("pending").value_or(0);
  out.last_delivered_id = g.text_of("last-delivered-id");
  out.entries_read = g.number_of("entries-read");
  out.lag = g.number_of("lag");
  return out;
}

std::vector<group_info> to_groups(const reply_tree& reply) {
  std::vector<group_info> out;
  for (const auto& g : reply.items) {
    out.push_back(to_group(g));
  }
  return out;
}

consumer_info to_consumer(const reply_tree& c) {
  consumer_info out;
  out.name = c.text_of("name");
  out.pending = c.number_of("pending").value_or(0);
  out.idle_ms = c.number_of("idle").value_or(0);
  out.inactive_ms = c.signed_number_of("inactive");
  return out;
}

// An XRANGE entry: [id, [field, value, ...]]; a null field list (deleted) is empty.
stored_entry to_entry(const reply_tree& e) {
  stored_entry out;
  if (e.items.empty()) {
    return out;
  }
  out.id = e.items[0].text;
  if (e.items.size() > 1) {
    const auto& f = e.items[1].items;
    for (std::size_t i = 0; i + 1 < f.size(); i += 2) {
      out.fields.emplace_back(f[i].text, f[i + 1].text);
    }
    if (f.size() % 2 != 0) {
      out.fields.emplace_back(f.back().text, std::string());
    }
  }
  return out;
}

std::vector<stored_entry> to_entries(const reply_tree& reply) {
  std::vector<stored_entry> out;
  for (const auto& e : reply.items) {
    out.push_back(to_entry(e));
  }
  return out;
}

std::vector<std::string> replay_args(const std::string& id) {
  std::vector<std::string> args;
  args.push_back(id);
  for (const auto name : dead_letter_metadata) {
    args.emplace_back(name);
  }
  return args;
}

}  // namespace

const boost::system::error_category& admin_category() noexcept {
  static const admin_category_impl category;
  return category;
}

std::optional<std::string> normalize_id(std::string_view id) {
  const auto dash = id.find('-');
  const auto ms = to_unsigned(id.substr(0, dash));
  if (!ms) {
    return std::nullopt;
  }
  if (dash == std::string_view::npos) {
    return std::to_string(*ms) + "-0";
  }
  const auto seq = to_unsigned(id.substr(dash + 1));
  if (!seq) {
    return std::nullopt;
  }
  return std::to_string(*ms) + "-" + std::to_string(*seq);
}

std::string_view to_string(replay_status s) noexcept {
  switch (s) {
    case replay_status::replayed:
      return "replayed";
    case replay_status::not_found:
      return "not_found";
    case replay_status::malformed:
      return "malformed";
    case replay_status::refused:
      return "refused";
  }
  return "unknown";
}

std::variant<dead_letter, malformed_dead_letter> parse_dead_letter(stored_entry e) {
  const auto malformed = [&e](std::string problem) {
    return malformed_dead_letter{std::move(e.id), std::move(problem), std::move(e.fields)};
  };
  if (e.fields.size() <= metadata_fields) {
    return malformed("has " + std::to_string(e.fields.size()) + " field(s); a dead letter has " +
                     std::to_string(metadata_fields) +
                     " metadata fields and at least one original field");
  }
  for (std::size_t i = 0; i < metadata_fields; ++i) {
    if (e.fields[i].first != dead_letter_metadata[i]) {
      return malformed("field " + std::to_string(i + 1) + " is \"" + e.fields[i].first +
                       "\", expected \"" + std::string(dead_letter_metadata[i]) + "\"");
    }
  }
  const auto deliveries = to_unsigned(e.fields[4].second);
  if (!deliveries) {
    return malformed("dlq.deliveries is not a count: \"" + e.fields[4].second + "\"");
  }
  const auto at = to_unsigned(e.fields[6].second);
  if (!at || *at > static_cast<std::uint64_t>(INT64_MAX)) {
    return malformed("dlq.at_ms is not a time in ms: \"" + e.fields[6].second + "\"");
  }
  if (e.fields[0].second.empty()) {
    return malformed("dlq.stream is empty");
  }
  dead_letter d;
  d.id = std::move(e.id);
  d.source_stream = std::move(e.fields[0].second);
  d.source_id = std::move(e.fields[1].second);
  d.group = std::move(e.fields[2].second);
  d.consumer = std::move(e.fields[3].second);
  d.deliveries = *deliveries;
  d.reason = std::move(e.fields[5].second);
  d.at_ms = static_cast<std::int64_t>(*at);
  d.fields.assign(std::make_move_iterator(e.fields.begin() + metadata_fields),
                  std::make_move_iterator(e.fields.end()));
  return d;
}

asio::awaitable<stream_info> admin::info(std::string stream) {
  redis::request req;
  req.push("TYPE", stream);
  req.push("XINFO", "STREAM", stream);
  req.push("XINFO", "GROUPS", stream);
  redis::response<std::string, nodes, nodes> resp;
  co_await redis_->exec(req, resp);
  check_stream_type(std::get<0>(resp), stream);
  const auto s = detail::to_tree(std::get<1>(resp).value());
  stream_info out;
  out.stream = stream;
  out.length = s.number_of("length").value_or(0);
  out.last_generated_id = s.text_of("last-generated-id");
  out.entries_added = s.number_of("entries-added");
  const auto* first = s.find("first-entry");
  if (first != nullptr && !first->is_null() && !first->items.empty()) {
    out.first_id = first->items[0].text;
  }
  const auto* last = s.find("last-entry");
  if (last != nullptr && !last->is_null() && !last->items.empty()) {
    out.last_id = last->items[0].text;
  }
  out.groups = to_groups(detail::to_tree(std::get<2>(resp).value()));
  co_return out;
}

asio::awaitable<std::vector<group_info>> admin::groups(std::string stream) {
  redis::request req;
  req.push("TYPE", stream);
  req.push("XINFO", "GROUPS", stream);
  redis::response<std::string, nodes> resp;
  co_await redis_->exec(req, resp);
  check_stream_type(std::get<0>(resp), stream);
  auto out = to_groups(detail::to_tree(std::get<1>(resp).value()));
  if (out.empty()) {
    co_return out;
  }
  redis::request consumers;
  for (const auto& g : out) {
    consumers.push("XINFO", "CONSUMERS", stream, g.name);
  }
  // A generic response keeps every reply (an error reply included, as a node).
  redis::generic_response generic;
  co_await redis_->exec(consumers, generic);
  // Split the generic node list into one tree per reply (each root at depth 0).
  std::size_t g = 0;
  for (std::size_t i = 0; i < generic.size() && g < out.size();) {
    std::size_t end = i + 1;
    while (end < generic.size() && generic[end].depth > 0) {
      ++end;
    }
    const nodes one(generic.begin() + static_cast<std::ptrdiff_t>(i),
                    generic.begin() + static_cast<std::ptrdiff_t>(end));
    if (!redis::resp3::is_error(one.front().data_type)) {
      for (const auto& c : detail::to_tree(one).items) {
        out[g].consumer_list.push_back(to_consumer(c));
      }
    }
    ++g;
    i = end;
  }
  co_return out;
}

asio::awaitable<pending_summary> admin::pending(std::string stream, std::string group) {
  redis::request req;
  req.push("TYPE", stream);
  req.push("XPENDING", stream, group);
  redis::response<std::string, nodes> resp;
  co_await redis_->exec(req, resp);
  check_stream_type(std::get<0>(resp), stream);
  const auto reply = detail::to_tree(value_of(std::get<1>(resp), stream, group));
  pending_summary out;
  if (reply.items.size() < 4) {
    throw std::runtime_error("unexpected XPENDING reply");
  }
  out.count = to_unsigned(reply.items[0].text).value_or(0);
  if (!reply.items[1].is_null()) {
    out.lowest_id = reply.items[1].text;
  }
  if (!reply.items[2].is_null()) {
    out.highest_id = reply.items[2].text;
  }
  for (const auto& c : reply.items[3].items) {
    if (c.items.size() == 2) {
      out.per_consumer.emplace_back(c.items[0].text, to_unsigned(c.items[1].text).value_or(0));
    }
  }
  co_return out;
}

asio::awaitable<std::vector<pending_entry>> admin::pending_entries(std::string stream,
                                                                   std::string group,
                                                                   pending_query query) {
  const auto start = checked_id(query.start, true);
  const auto end = checked_id(query.end, true);
  // XPENDING key group [IDLE ms] start end count [consumer]
  std::vector<std::string> args;
  args.push_back(stream);
  args.push_back(group);
  if (query.min_idle.count() > 0) {
    args.push_back("IDLE");
    args.push_back(std::to_string(query.min_idle.count()));
  }
  args.push_back(start);
  args.push_back(end);
  args.push_back(std::to_string(query.count));
  if (!query.consumer.empty()) {
    args.push_back(query.consumer);
  }
  redis::request req;
  req.push("TYPE", stream);
  req.push("XPENDING", args);
  redis::response<std::string, nodes> resp;
  co_await redis_->exec(req, resp);
  check_stream_type(std::get<0>(resp), stream);
  const auto reply = detail::to_tree(value_of(std::get<1>(resp), stream, group));
  std::vector<pending_entry> out;
  for (const auto& e : reply.items) {
    if (e.items.size() != 4) {
      throw std::runtime_error("unexpected XPENDING reply");
    }
    pending_entry p;
    p.id = e.items[0].text;
    p.consumer = e.items[1].text;
    p.idle_ms = to_unsigned(e.items[2].text).value_or(0);
    p.deliveries = to_unsigned(e.items[3].text).value_or(0);
    out.push_back(std::move(p));
  }
  co_return out;
}

asio::awaitable<dead_letter_page> admin::dead_letters(std::string dead_letter_stream,
                                                      std::string after, std::size_t count) {
  const auto start = after == "-" ? std::string("-") : "(" + checked_id(after);
  redis::request req;
  req.push("TYPE", dead_letter_stream);
  req.push("XRANGE", dead_letter_stream, start, "+", "COUNT", count);
  redis::response<std::string, nodes> resp;
  co_await redis_->exec(req, resp);
  dead_letter_page page;
  if (!check_stream_type(std::get<0>(resp), dead_letter_stream, true)) {
    co_return page;
  }
  auto entries = to_entries(detail::to_tree(std::get<1>(resp).value()));
  if (count > 0 && entries.size() == count) {
    page.next = entries.back().id;
  }
  for (auto& e : entries) {
    auto parsed = parse_dead_letter(std::move(e));
    if (auto* d = std::get_if<dead_letter>(&parsed)) {
      page.entries.push_back(std::move(*d));
    } else {
      page.malformed.push_back(std::move(std::get<malformed_dead_letter>(parsed)));
    }
  }
  co_return page;
}

asio::awaitable<replay_outcome> admin::replay(std::string dead_letter_stream, std::string id) {
  replay_outcome out;
  out.id = checked_id(id);
  redis::request req;
  req.push("TYPE", dead_letter_stream);
  req.push("XRANGE", dead_letter_stream, out.id, out.id);
  redis::response<std::string, nodes> resp;
  co_await redis_->exec(req, resp);
  if (!check_stream_type(std::get<0>(resp), dead_letter_stream, true)) {
    co_return out;  // not_found
  }
  auto entries = to_entries(detail::to_tree(std::get<1>(resp).value()));
  if (entries.empty()) {
    co_return out;
  }
  auto parsed = parse_dead_letter(std::move(entries.front()));
  if (auto* bad = std::get_if<malformed_dead_letter>(&parsed)) {
    out.status = replay_status::malformed;
    out.problem = std::move(bad->problem);
    co_return out;
  }
  const auto& letter = std::get<dead_letter>(parsed);
  out.source_stream = letter.source_stream;
  if (redis_->is_cluster() &&
      redis::key_slot(letter.source_stream) != redis::key_slot(dead_letter_stream)) {
    fail(admin_error::cross_slot, "dead letter " + out.id + " of '" + dead_letter_stream +
                                      "' names source stream '" + letter.source_stream +
                                      "', in another hash slot: it cannot be replayed "
                                      "atomically (use the default dead-letter key)");
  }
  std::vector<std::string> keys;
  keys.push_back(dead_letter_stream);
  keys.push_back(letter.source_stream);
  auto args = replay_args(out.id);
  redis::response<nodes> script_resp;
  co_await replay_script().exec(*redis_, keys, args, script_resp);
  const auto reply = detail::to_tree(std::get<0>(script_resp).value());
  const auto& code = reply.items.at(0).text;
  if (code == "1") {
    out.status = replay_status::replayed;
    out.new_id = reply.items.at(1).text;
  } else if (code == "-1") {
    out.status = replay_status::malformed;
    out.problem = reply.items.at(1).text;
  } else if (code == "-3") {
    fail(admin_error::wrong_type, "key '" + letter.source_stream + "' holds a " +
                                      reply.items.at(1).text + ", not a stream: dead letter " +
                                      out.id + " kept");
  }
  // "0" (purged or replayed meanwhile) and "-2" (cannot happen: ids are never reused)
  // leave the outcome not_found.
  co_return out;
}

asio::awaitable<std::vector<replay_outcome>> admin::replay_all(std::string dead_letter_stream) {
  std::vector<replay_outcome> outcomes;
  redis::request last_req;
  last_req.push("TYPE", dead_letter_stream);
  last_req.push("XREVRANGE", dead_letter_stream, "+", "-", "COUNT", 1);
  redis::response<std::string, nodes> last_resp;
  co_await redis_->exec(last_req, last_resp);
  if (!check_stream_type(std::get<0>(last_resp), dead_letter_stream, true)) {
    co_return outcomes;
  }
  const auto last = to_entries(detail::to_tree(std::get<1>(last_resp).value()));
  if (last.empty()) {
    co_return outcomes;
  }
  const std::string last_id = last.front().id;  // later entries are not this call's
  std::string after = "-";
  for (;;) {
    const auto start = after == "-" ? after : "(" + after;
    redis::request page_req;
    page_req.push("XRANGE", dead_letter_stream, start, last_id, "COUNT", 100);
    redis::response<nodes> page_resp;
    co_await redis_->exec(page_req, page_resp);
    const auto page = to_entries(detail::to_tree(std::get<0>(page_resp).value()));
    if (page.empty()) {
      break;
    }
    for (const auto& e : page) {
      replay_outcome outcome;
      try {
        outcome = co_await replay(dead_letter_stream, e.id);
      } catch (const boost::system::system_error& refused) {
        if (refused.code().category() != admin_category()) {
          throw;  // Redis or the connection: not this entry's fault
        }
        outcome.id = e.id;
        outcome.status = replay_status::refused;
        outcome.problem = refused.what();
      }
      outcomes.push_back(std::move(outcome));
    }
    after = page.back().id;
    if (after == last_id) {
      break;
    }
  }
  co_return outcomes;
}

asio::awaitable<bool> admin::purge(std::string dead_letter_stream, std::string id) {
  const auto checked = checked_id(id);
  redis::request req;
  req.push("TYPE", dead_letter_stream);
  req.push("XDEL", dead_letter_stream, checked);
  redis::response<std::string, std::uint64_t> resp;
  co_await redis_->exec(req, resp);
  if (!check_stream_type(std::get<0>(resp), dead_letter_stream, true)) {
    co_return false;
  }
  co_return std::get<1>(resp).value() == 1;
}

namespace {

asio::awaitable<std::uint64_t> run_purge(redis::client& redis, std::string dead_letter_stream,
                                         std::string mode, std::string age_ms) {
  std::vector<std::string> keys;
  keys.push_back(dead_letter_stream);
  std::vector<std::string> args;
  args.push_back(std::move(mode));
  args.push_back(std::move(age_ms));
  redis::response<nodes> resp;
  co_await purge_script().exec(redis, keys, args, resp);
  const auto reply = detail::to_tree(std::get<0>(resp).value());
  const auto& code = reply.items.at(0).text;
  if (code == "-2") {
    fail(admin_error::wrong_type,
         "key '" + dead_letter_stream + "' holds a " + reply.items.at(1).text + ", not a stream");
  }
  co_return to_unsigned(code).value_or(0);
}

}  // namespace

asio::awaitable<std::uint64_t> admin::purge_all(std::string dead_letter_stream) {
  co_return co_await run_purge(*redis_, std::move(dead_letter_stream), "all", "0");
}

asio::awaitable<std::uint64_t> admin::purge_older_than(std::string dead_letter_stream,
                                                       std::chrono::milliseconds age) {
  if (age.count() < 0) {
    throw std::invalid_argument("purge_older_than: the age must not be negative");
  }
  co_return co_await run_purge(*redis_, std::move(dead_letter_stream), "age",
                               std::to_string(age.count()));
}

asio::awaitable<trim_result> admin::trim(std::string stream, trim_options options) {
  co_return co_await safe_trim(*redis_, std::move(stream), std::move(options));
}

}  // namespace corvo::stream
