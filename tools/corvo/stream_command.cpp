// `corvo stream info|groups|pending|dlq list|dlq replay|dlq purge|trim`: administration of
// Redis streams, their consumer groups and dead-letter streams (stream::admin). Readable
// tables by default, one JSON document with --json.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/log.hpp>
#include <corvo/stream/admin.hpp>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli.hpp"
#include "command.hpp"
#include "store_target.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace po = boost::program_options;
namespace redis = corvo::redis;
namespace stream = corvo::stream;

namespace {

using corvo::tool::help_requested;
using corvo::tool::parse_arguments;

constexpr const char* usage = R"(usage:
  corvo stream info STREAM
  corvo stream groups STREAM
  corvo stream pending STREAM GROUP [--consumer NAME] [--min-idle DURATION] [--start ID]
                                    [--end ID] [--count N]
  corvo stream dlq list STREAM [--after ID] [--count N] [--dlq KEY]
  corvo stream dlq replay STREAM (ID | --all) [--dlq KEY]
  corvo stream dlq purge STREAM (ID | --all | --older-than DURATION) [--dlq KEY]
  corvo stream trim STREAM (--max-age DURATION | --min-id ID) [--trim-undelivered]
common options: --config APP.json (the application's configuration: its redis section)
                --redis URL | --cluster URL...  --connect-timeout DURATION (default 3s)  --json
STREAM is the stream's key; its dead letters are in "{STREAM}:dlq" ("S:dlq" when STREAM has a
hash tag) unless --dlq names the dead-letter stream. DURATION: 250ms, 30s, 5m, 1h.
trim never removes an entry pending in a group, nor (without --trim-undelivered) one a group
has not read yet.
)";

struct connection_flags {
  std::string config_file;
  std::string redis_url;
  std::vector<std::string> cluster_seeds;
  std::string connect_timeout = "3s";
  bool json_output = false;
};

void add_connection_flags(po::options_description& options, connection_flags& flags) {
  options.add_options()("help,h", "show this help")(
      "config", po::value(&flags.config_file),
      "the application's configuration file (its redis section; CORVO_* overrides apply)")(
      "redis", po::value(&flags.redis_url),
      "Redis URL (default: the file's, else $CORVO_REDIS__URL, else redis://127.0.0.1:6379)")(
      "cluster", po::value(&flags.cluster_seeds)->composing(),
      "Redis Cluster seed URL (repeatable; replaces --redis)")(
      "connect-timeout", po::value(&flags.connect_timeout)->default_value("3s"),
      "give up when Redis does not answer within this")("json", po::bool_switch(&flags.json_output),
                                                        "print JSON");
}

std::chrono::milliseconds parse_duration(const std::string& option, const std::string& text) {
  corvo::config c;
  c.set(option, json::string(text), "--" + option);
  return c.get<std::chrono::milliseconds>(option);
}

corvo::tool::store_target resolve(const connection_flags& flags) {
  corvo::tool::store_target target;
  target.connect_timeout = parse_duration("connect-timeout", flags.connect_timeout);
  if (target.connect_timeout.count() == 0) {
    throw std::invalid_argument("--connect-timeout must be more than 0");
  }
  if (!flags.config_file.empty()) {
    const auto app = corvo::config::from_file(flags.config_file);
    target.redis = redis::client_config::from(app);
  } else {
    const char* env = std::getenv("CORVO_REDIS__URL");
    target.redis = redis::client_config::from_url(env ? env : "redis://127.0.0.1:6379");
  }
  if (!flags.cluster_seeds.empty()) {
    target.redis = redis::client_config::from_cluster_seeds(flags.cluster_seeds);
  } else if (!flags.redis_url.empty()) {
    target.redis = redis::client_config::from_url(flags.redis_url);
  }
  target.redis.server.connect_timeout = target.connect_timeout;
  if (target.redis.cluster) {
    target.redis.cluster->node.connect_timeout = target.connect_timeout;
    target.addresses = target.redis.cluster->seeds;
  } else {
    target.addresses.push_back(target.redis.server.host + ":" + target.redis.server.port);
  }
  return target;
}

using operation = std::function<asio::awaitable<int>(stream::admin&)>;

asio::awaitable<int> run_admin(redis::client& client, operation op) {
  stream::admin admin(client);
  co_return co_await op(admin);
}

// Connects (giving up after --connect-timeout), runs `op`, returns its exit code. Admin
// errors (missing stream, wrong type, bad id) propagate to main(): message, exit code 1.
int with_admin(const connection_flags& flags, operation op) {
  return corvo::tool::run_with_client(resolve(flags), [op = std::move(op)](redis::client& client) {
    return run_admin(client, op);
  });
}

std::string iso8601_ms(std::int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  std::ostringstream out;
  out << std::put_time(&tm, "%Y-%m-%dT%H:%M:%S") << '.' << std::setw(3) << std::setfill('0')
      << ms % 1000 << 'Z';
  return out.str();
}

// Columns padded to their widest cell.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& r : rows) {
      width[c] = std::max(width[c], r.at(c).size());
    }
  }
  const auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t c = 0; c < cells.size(); ++c) {
      std::cout << cells[c];
      if (c + 1 < cells.size()) {
        std::cout << std::string(width[c] - cells[c].size() + 2, ' ');
      }
    }
    std::cout << "\n";
  };
  line(header);
  for (const auto& r : rows) {
    line(r);
  }
}

template <class T>
std::string or_dash(const std::optional<T>& v) {
  if (!v) {
    return "-";
  }
  if constexpr (std::is_same_v<T, std::string>) {
    return *v;
  } else {
    return std::to_string(*v);
  }
}

template <class T>
json::value or_null(const std::optional<T>& v) {
  if (!v) {
    return nullptr;
  }
  return json::value(*v);
}

json::array fields_json(const stream::field_list& fields) {
  json::array out;
  for (const auto& [name, value] : fields) {
    out.push_back(json::array{json::string(name), json::string(value)});
  }
  return out;
}

std::string fields_text(const stream::field_list& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    out += (out.empty() ? "" : " ") + name + "=" + value;
  }
  return out;
}

json::object group_json(const stream::group_info& g) {
  json::object o{{"name", g.name},
                 {"consumers", g.consumers},
                 {"pending", g.pending},
                 {"last_delivered_id", g.last_delivered_id},
                 {"entries_read", or_null(g.entries_read)},
                 {"lag", or_null(g.lag)}};
  if (!g.consumer_list.empty()) {
    json::array consumers;
    for (const auto& c : g.consumer_list) {
      consumers.push_back(json::object{{"name", c.name},
                                       {"pending", c.pending},
                                       {"idle_ms", c.idle_ms},
                                       {"inactive_ms", or_null(c.inactive_ms)}});
    }
    o["consumer_list"] = std::move(consumers);
  }
  return o;
}

void print_groups(const std::vector<stream::group_info>& groups) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& g : groups) {
    rows.push_back({g.name, std::to_string(g.consumers), std::to_string(g.pending),
                    g.last_delivered_id, or_dash(g.entries_read), or_dash(g.lag)});
  }
  print_table({"GROUP", "CONSUMERS", "PENDING", "LAST-DELIVERED", "ENTRIES-READ", "LAG"}, rows);
}

// ---- verbs ----

asio::awaitable<int> show_info(stream::admin& admin, std::string key, bool as_json) {
  const auto info = co_await admin.info(key);
  if (as_json) {
    json::array groups;
    for (const auto& g : info.groups) {
      groups.push_back(group_json(g));
    }
    std::cout << json::serialize(json::object{{"stream", info.stream},
                                              {"length", info.length},
                                              {"first_id", or_null(info.first_id)},
                                              {"last_id", or_null(info.last_id)},
                                              {"last_generated_id", info.last_generated_id},
                                              {"entries_added", or_null(info.entries_added)},
                                              {"groups", std::move(groups)}})
              << "\n";
    co_return 0;
  }
  std::cout << "stream          " << info.stream << "\n"
            << "length          " << info.length << "\n"
            << "first id        " << or_dash(info.first_id) << "\n"
            << "last id         " << or_dash(info.last_id) << "\n"
            << "last generated  " << info.last_generated_id << "\n"
            << "entries added   " << or_dash(info.entries_added) << "\n"
            << "groups          " << info.groups.size() << "\n";
  if (!info.groups.empty()) {
    std::cout << "\n";
    print_groups(info.groups);
  }
  co_return 0;
}

asio::awaitable<int> show_groups(stream::admin& admin, std::string key, bool as_json) {
  const auto groups = co_await admin.groups(key);
  if (as_json) {
    json::array out;
    for (const auto& g : groups) {
      out.push_back(group_json(g));
    }
    std::cout << json::serialize(out) << "\n";
    co_return 0;
  }
  if (groups.empty()) {
    std::cout << "(no groups)\n";
    co_return 0;
  }
  print_groups(groups);
  std::vector<std::vector<std::string>> rows;
  for (const auto& g : groups) {
    for (const auto& c : g.consumer_list) {
      rows.push_back({g.name, c.name, std::to_string(c.pending), std::to_string(c.idle_ms)});
    }
  }
  if (!rows.empty()) {
    std::cout << "\n";
    print_table({"GROUP", "CONSUMER", "PENDING", "IDLE-MS"}, rows);
  }
  co_return 0;
}

asio::awaitable<int> show_pending(stream::admin& admin, std::string key, std::string group,
                                  stream::pending_query query, bool as_json) {
  const auto summary = co_await admin.pending(key, group);
  const auto entries = co_await admin.pending_entries(key, group, query);
  if (as_json) {
    json::object per_consumer;
    for (const auto& [name, count] : summary.per_consumer) {
      per_consumer[name] = count;
    }
    json::array list;
    for (const auto& e : entries) {
      list.push_back(json::object{{"id", e.id},
                                  {"consumer", e.consumer},
                                  {"idle_ms", e.idle_ms},
                                  {"deliveries", e.deliveries}});
    }
    std::cout << json::serialize(json::object{{"count", summary.count},
                                              {"lowest_id", or_null(summary.lowest_id)},
                                              {"highest_id", or_null(summary.highest_id)},
                                              {"per_consumer", std::move(per_consumer)},
                                              {"entries", std::move(list)}})
              << "\n";
    co_return 0;
  }
  std::cout << summary.count << " pending in group " << group;
  if (summary.count > 0) {
    std::cout << " (" << *summary.lowest_id << " .. " << *summary.highest_id << ")";
  }
  std::cout << "\n";
  if (!entries.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : entries) {
      rows.push_back({e.id, e.consumer, std::to_string(e.idle_ms), std::to_string(e.deliveries)});
    }
    std::cout << "\n";
    print_table({"ID", "CONSUMER", "IDLE-MS", "DELIVERIES"}, rows);
  }
  co_return 0;
}

asio::awaitable<int> list_dead_letters(stream::admin& admin, std::string dlq, std::string after,
                                       std::size_t count, bool as_json) {
  const auto page = co_await admin.dead_letters(dlq, after, count);
  if (as_json) {
    json::array entries, malformed;
    for (const auto& d : page.entries) {
      entries.push_back(json::object{{"id", d.id},
                                     {"stream", d.source_stream},
                                     {"source_id", d.source_id},
                                     {"group", d.group},
                                     {"consumer", d.consumer},
                                     {"deliveries", d.deliveries},
                                     {"reason", d.reason},
                                     {"at_ms", d.at_ms},
                                     {"fields", fields_json(d.fields)}});
    }
    for (const auto& m : page.malformed) {
      malformed.push_back(
          json::object{{"id", m.id}, {"problem", m.problem}, {"fields", fields_json(m.fields)}});
    }
    std::cout << json::serialize(json::object{{"dead_letter_stream", dlq},
                                              {"entries", std::move(entries)},
                                              {"malformed", std::move(malformed)},
                                              {"next", or_null(page.next)}})
              << "\n";
    co_return 0;
  }
  if (page.entries.empty() && page.malformed.empty()) {
    std::cout << "(no dead letters in " << dlq << ")\n";
    co_return 0;
  }
  if (!page.entries.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& d : page.entries) {
      rows.push_back({d.id, d.source_stream + " " + d.source_id, d.group, d.consumer,
                      std::to_string(d.deliveries), iso8601_ms(d.at_ms), d.reason,
                      fields_text(d.fields)});
    }
    print_table({"ID", "SOURCE", "GROUP", "CONSUMER", "DELIVERIES", "AT", "REASON", "FIELDS"},
                rows);
  }
  for (const auto& m : page.malformed) {
    std::cout << "malformed " << m.id << ": " << m.problem << " (" << fields_text(m.fields)
              << ")\n";
  }
  if (page.next) {
    std::cout << "more: --after " << *page.next << "\n";
  }
  co_return 0;
}

json::object outcome_json(const stream::replay_outcome& o) {
  json::object out{{"id", o.id}, {"status", std::string(to_string(o.status))}};
  if (o.status == stream::replay_status::replayed) {
    out["stream"] = o.source_stream;
    out["new_id"] = o.new_id;
  }
  if (!o.problem.empty()) {
    out["problem"] = o.problem;
  }
  return out;
}

void print_outcome(const stream::replay_outcome& o) {
  switch (o.status) {
    case stream::replay_status::replayed:
      std::cout << "replayed " << o.id << " -> " << o.source_stream << " " << o.new_id << "\n";
      break;
    case stream::replay_status::not_found:
      std::cout << "no dead letter " << o.id << "\n";
      break;
    case stream::replay_status::malformed:
      std::cout << "kept malformed " << o.id << ": " << o.problem << "\n";
      break;
    case stream::replay_status::refused:
      std::cout << "kept refused " << o.id << ": " << o.problem << "\n";
      break;
  }
}

asio::awaitable<int> replay(stream::admin& admin, std::string dlq, std::string id, bool all,
                            bool as_json) {
  std::vector<stream::replay_outcome> outcomes;
  if (all) {
    outcomes = co_await admin.replay_all(dlq);
  } else {
    outcomes.push_back(co_await admin.replay(dlq, id));
  }
  bool ok = true;
  json::array out;
  for (const auto& o : outcomes) {
    ok = ok && o.status == stream::replay_status::replayed;
    if (as_json) {
      out.push_back(outcome_json(o));
    } else {
      print_outcome(o);
    }
  }
  if (as_json) {
    std::cout << json::serialize(out) << "\n";
  } else if (all && outcomes.empty()) {
    std::cout << "(no dead letters in " << dlq << ")\n";
  }
  co_return ok ? 0 : 1;
}

asio::awaitable<int> purge(stream::admin& admin, std::string dlq, std::string id, bool all,
                           std::optional<std::chrono::milliseconds> older_than, bool as_json) {
  std::uint64_t removed = 0;
  if (all) {
    removed = co_await admin.purge_all(dlq);
  } else if (older_than) {
    removed = co_await admin.purge_older_than(dlq, *older_than);
  } else {
    removed = (co_await admin.purge(dlq, id)) ? 1 : 0;
  }
  if (as_json) {
    std::cout << json::serialize(json::object{{"dead_letter_stream", dlq}, {"purged", removed}})
              << "\n";
  } else if (!all && !older_than && removed == 0) {
    std::cout << "no dead letter " << id << "\n";
  } else {
    std::cout << "purged " << removed << " dead letter(s) from " << dlq << "\n";
  }
  co_return (!all && !older_than && removed == 0) ? 1 : 0;
}

asio::awaitable<int> trim(stream::admin& admin, std::string key, stream::trim_options options,
                          bool as_json) {
  const auto r = co_await admin.trim(key, options);
  if (as_json) {
    std::cout << json::serialize(json::object{{"stream", r.stream},
                                              {"trimmed", r.trimmed},
                                              {"requested_min_id", r.requested_min_id},
                                              {"min_id", r.min_id},
                                              {"limited_by", std::string(to_string(r.limited_by))},
                                              {"limiting_group", r.limiting_group},
                                              {"length", r.length}})
              << "\n";
    co_return 0;
  }
  std::cout << "trimmed " << r.trimmed << " entries of " << r.stream << " below " << r.min_id;
  if (r.limited_by != stream::trim_limit::none) {
    std::cout << " (asked " << r.requested_min_id << "; kept back by "
              << (r.limited_by == stream::trim_limit::pending ? "pending" : "undelivered")
              << " entries of group " << r.limiting_group << ")";
  }
  std::cout << "; " << r.length << " left\n";
  co_return 0;
}

// ---- argument handling ----

std::string dead_letter_stream(const std::string& key, const std::string& dlq) {
  return dlq.empty() ? stream::dead_letter_key(key) : dlq;
}

std::string required_id(const std::string& text, const char* what) {
  const auto id = stream::normalize_id(text);
  if (!id) {
    throw std::invalid_argument(std::string(what) + " '" + text +
                                "' is not a stream id (e.g. 1700000000000-0)");
  }
  return *id;
}

int run_simple(const std::vector<std::string>& args, bool groups) {
  connection_flags flags;
  std::string key;
  po::options_description options("options");
  add_connection_flags(options, flags);
  options.add_options()("stream", po::value(&key), "the stream (or the first word)");
  po::positional_options_description positional;
  positional.add("stream", 1);
  const auto line = std::string("corvo stream ") + (groups ? "groups" : "info") + " STREAM";
  if (help_requested(args, line, options)) {
    return 0;
  }
  parse_arguments(args, options, &positional);
  if (key.empty()) {
    throw std::invalid_argument("missing STREAM");
  }
  return with_admin(flags, [key, groups, &flags](stream::admin& a) {
    return groups ? show_groups(a, key, flags.json_output) : show_info(a, key, flags.json_output);
  });
}

int run_pending(const std::vector<std::string>& args) {
  connection_flags flags;
  std::string key, group, min_idle;
  stream::pending_query query;
  po::options_description options("options");
  add_connection_flags(options, flags);
  options.add_options()("stream", po::value(&key), "the stream (first word)")(
      "group", po::value(&group), "the consumer group (second word)")(
      "consumer", po::value(&query.consumer), "only this consumer's entries")(
      "min-idle", po::value(&min_idle), "only entries idle at least this long")(
      "start", po::value(&query.start)->default_value("-"), "from this id")(
      "end", po::value(&query.end)->default_value("+"), "to this id")(
      "count", po::value(&query.count)->default_value(100), "list at most this many");
  po::positional_options_description positional;
  positional.add("stream", 1).add("group", 1);
  if (help_requested(args, "corvo stream pending STREAM GROUP [options]", options)) {
    return 0;
  }
  parse_arguments(args, options, &positional);
  if (key.empty() || group.empty()) {
    throw std::invalid_argument("give STREAM and GROUP");
  }
  if (query.start != "-") {
    query.start = required_id(query.start, "--start");
  }
  if (query.end != "+") {
    query.end = required_id(query.end, "--end");
  }
  if (!min_idle.empty()) {
    query.min_idle = parse_duration("min-idle", min_idle);
  }
  return with_admin(flags, [key, group, query, &flags](stream::admin& a) {
    return show_pending(a, key, group, query, flags.json_output);
  });
}

int run_dlq(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << usage;
    return args.empty() ? 2 : 0;
  }
  const std::string verb = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  connection_flags flags;
  std::string key, id, dlq, after = "-", older_than;
  std::size_t count = 100;
  bool all = false;
  po::options_description options("options");
  add_connection_flags(options, flags);
  options.add_options()("stream", po::value(&key), "the source stream (first word)")(
      "dlq", po::value(&dlq), "the dead-letter stream (default: the stream's)");
  po::positional_options_description positional;
  positional.add("stream", 1);
  if (verb == "list") {
    options.add_options()("after", po::value(&after)->default_value("-"), "after this id")(
        "count", po::value(&count)->default_value(100), "list at most this many");
  } else if (verb == "replay" || verb == "purge") {
    options.add_options()("id", po::value(&id), "the dead letter's id (second word)")(
        "all", po::bool_switch(&all), "every dead letter");
    positional.add("id", 1);
    if (verb == "purge") {
      options.add_options()("older-than", po::value(&older_than),
                            "the dead letters older than this");
    }
  } else {
    std::cerr << "corvo stream dlq: unknown subcommand '" << verb << "'\n\n" << usage;
    return 2;
  }
  if (help_requested(rest, "corvo stream dlq " + verb + " STREAM [options]", options)) {
    return 0;
  }
  parse_arguments(rest, options, &positional);
  if (key.empty()) {
    throw std::invalid_argument("missing STREAM");
  }
  const auto target = dead_letter_stream(key, dlq);
  if (verb == "list") {
    if (after != "-") {
      after = required_id(after, "--after");
    }
    return with_admin(flags, [target, after, count, &flags](stream::admin& a) {
      return list_dead_letters(a, target, after, count, flags.json_output);
    });
  }
  const int choices = (id.empty() ? 0 : 1) + (all ? 1 : 0) + (older_than.empty() ? 0 : 1);
  if (choices != 1) {
    throw std::invalid_argument(verb == "replay"
                                    ? "give exactly one of ID and --all"
                                    : "give exactly one of ID, --all and --older-than");
  }
  if (!id.empty()) {
    id = required_id(id, "dead letter id");
  }
  if (verb == "replay") {
    return with_admin(flags, [target, id, all, &flags](stream::admin& a) {
      return replay(a, target, id, all, flags.json_output);
    });
  }
  std::optional<std::chrono::milliseconds> age;
  if (!older_than.empty()) {
    age = parse_duration("older-than", older_than);
  }
  return with_admin(flags, [target, id, all, age, &flags](stream::admin& a) {
    return purge(a, target, id, all, age, flags.json_output);
  });
}

int run_trim(const std::vector<std::string>& args) {
  connection_flags flags;
  std::string key, max_age, min_id;
  bool trim_undelivered = false;
  po::options_description options("options");
  add_connection_flags(options, flags);
  options.add_options()("stream", po::value(&key), "the stream (first word)")(
      "max-age", po::value(&max_age), "remove entries older than this")(
      "min-id", po::value(&min_id), "remove entries below this id")(
      "trim-undelivered", po::bool_switch(&trim_undelivered),
      "also remove entries a group has not read yet");
  po::positional_options_description positional;
  positional.add("stream", 1);
  if (help_requested(args, "corvo stream trim STREAM (--max-age DURATION | --min-id ID)",
                     options)) {
    return 0;
  }
  parse_arguments(args, options, &positional);
  if (key.empty()) {
    throw std::invalid_argument("missing STREAM");
  }
  if (max_age.empty() == min_id.empty()) {
    throw std::invalid_argument("give exactly one of --max-age and --min-id");
  }
  stream::trim_options o;
  if (!max_age.empty()) {
    o.max_age = parse_duration("max-age", max_age);
  } else {
    o.min_id = required_id(min_id, "--min-id");
  }
  o.trim_undelivered = trim_undelivered;
  return with_admin(
      flags, [key, o, &flags](stream::admin& a) { return trim(a, key, o, flags.json_output); });
}

int run_stream(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << usage;
    return args.empty() ? 2 : 0;
  }
  const auto& verb = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (verb == "info") {
    return run_simple(rest, false);
  }
  if (verb == "groups") {
    return run_simple(rest, true);
  }
  if (verb == "pending") {
    return run_pending(rest);
  }
  if (verb == "dlq") {
    return run_dlq(rest);
  }
  if (verb == "trim") {
    return run_trim(rest);
  }
  std::cerr << "corvo stream: unknown subcommand '" << verb << "'\n\n" << usage;
  return 2;
}

const corvo::tool::registration stream_command{
    {"stream", "inspect streams and groups, replay or purge dead letters, trim safely",
     run_stream}};

}  // namespace
