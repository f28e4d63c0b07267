// Redis memory per scheduled task: used_memory (INFO memory) before and after scheduling.
//
//   scripts/bench schedule-memory [--tasks 1000000] [--payload-bytes 100] [--shards 16]
//                                 [--concurrency 64] [--id-bytes 0] [--compact 1]
//                                 [--listpack-value 0]
//
// Schedules `tasks` one-off tasks with a JSON payload of `payload-bytes` (an object with one
// random string field, so it does not compress into a shared or small encoding), due over the
// next day (an hour from now on: past compact_after, so with the compact tier on, the default,
// they all wait in its buckets; `--compact 0`: in the due sets), into a fresh redis-server and
// the default namespace. `--listpack-value N` sets the server's hash-max-listpack-value first
// (0: its default, 64; a bucket holding a record longer than it is stored as a hashtable).
// Reports the bytes per task, the overhead beyond the payload and, from MEMORY USAGE of shard
// 0's keys, where the bytes go. Target (issue 15): ≤ 250 bytes per task in all with a
// 100-byte payload and 36-byte (UUID) ids (`--id-bytes 36`).

#include <boost/asio/co_spawn.hpp>
#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>
#include <charconv>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/detail/record.hpp>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>

#include "support/report.hpp"
#include "support/schedule_setup.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace po = boost::program_options;
using namespace corvo::schedule;
using namespace std::chrono_literals;

namespace {

struct bench_options {
  std::size_t tasks = 1'000'000;
  std::size_t payload_bytes = 100;
  unsigned shards = 16;
  std::size_t concurrency = 64;
  std::size_t id_bytes = 0;
  bool compact = true;
  std::size_t listpack_value = 0;
};

// What the writers stored, summed over every task.
struct stored_sizes {
  std::size_t payload = 0;
  std::size_t record = 0;
  std::size_t id = 0;
};

// "task-<i>", zero-padded after the dash to `id_bytes` when that is longer.
std::string task_id(std::size_t i, std::size_t id_bytes) {
  std::string number = std::to_string(i);
  const std::size_t natural = 5 + number.size();
  return "task-" + std::string(id_bytes > natural ? id_bytes - natural : 0, '0') + number;
}

// {"data":"<random>"} serialized to `bytes` (at least 12: one random character).
boost::json::value random_payload(std::mt19937_64& random, std::size_t bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  constexpr std::size_t framing = sizeof(R"({"data":""})") - 1;
  std::string data(bytes > framing ? bytes - framing : 1, ' ');
  for (auto& c : data) {
    c = alphabet[random() % (sizeof(alphabet) - 1)];
  }
  return boost::json::object{{"data", std::move(data)}};
}

asio::awaitable<void> write_tasks(store& tasks, const bench_options& o, std::size_t first,
                                  time_point base, stored_sizes& sizes) {
  std::mt19937_64 random(first + 1);
  std::uniform_int_distribution<std::int64_t> offset_us(0, std::int64_t{24} * 3600 * 1'000'000);
  for (std::size_t i = first; i < o.tasks; i += o.concurrency) {
    task t;
    t.id = task_id(i, o.id_bytes);
    t.type = "bench";
    t.due = base + std::chrono::microseconds(offset_us(random));
    t.payload = random_payload(random, o.payload_bytes);
    sizes.payload += boost::json::serialize(t.payload).size();
    sizes.record += detail::encode_waiting_record(t).size();
    sizes.id += t.id.size();
    co_await tasks.schedule(std::move(t));
  }
}

// INFO memory as field → value (numeric fields only).
asio::awaitable<std::map<std::string, double>> memory_info(redis::client& conn) {
  redis::request req;
  req.push("INFO", "memory");
  redis::response<std::string> resp;
  co_await conn.exec(req, resp);
  std::map<std::string, double> fields;
  std::stringstream in(std::get<0>(resp).value());
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    const auto colon = line.find(':');
    if (line.empty() || line[0] == '#' || colon == std::string::npos) {
      continue;
    }
    double value = 0;
    const char* begin = line.data() + colon + 1;
    const char* end = line.data() + line.size();
    if (auto [ptr, ec] = std::from_chars(begin, end, value); ec == std::errc{} && ptr == end) {
      fields[line.substr(0, colon)] = value;
    }
  }
  co_return fields;
}

struct key_usage {
  long long entries = 0;
  long long bytes = 0;
  std::string encoding;
};

// Entries (ZCARD/HLEN), exact MEMORY USAGE (SAMPLES 0: every element) and encoding of `key`.
asio::awaitable<key_usage> usage_of(redis::client& conn, const std::string& key,
                                    const char* count_command) {
  redis::request req;
  req.push(count_command, key);
  req.push("MEMORY", "USAGE", key, "SAMPLES", "0");
  req.push("OBJECT", "ENCODING", key);
  redis::response<long long, std::optional<long long>, std::optional<std::string>> resp;
  co_await conn.exec(req, resp);  // nil usage and encoding: no such key
  co_return key_usage{std::get<0>(resp).value(), std::get<1>(resp).value().value_or(0),
                      std::get<2>(resp).value().value_or("none")};
}

// The server's hash-max-listpack-value.
asio::awaitable<long long> listpack_value(redis::client& conn) {
  redis::request req;
  req.push("CONFIG", "GET", "hash-max-listpack-value");
  redis::response<std::vector<std::string>> resp;
  co_await conn.exec(req, resp);
  const auto& pair = std::get<0>(resp).value();
  co_return pair.size() == 2 ? std::stoll(pair[1]) : -1;
}

// The compact tier of a shard (redis_store_options::compact): its buckets and index.
struct tier_usage {
  long long tasks = 0;
  long long buckets = 0;
  long long listpack_records = 0;  // buckets whose records hash is a listpack
  long long listpack_due = 0;      // buckets whose due set is a listpack
  long long record_bytes = 0;
  long long due_bytes = 0;
  long long index_bytes = 0;
};

// `prefix`: the shard's '{ns:s}:'. Reads every bucket the index names.
asio::awaitable<tier_usage> compact_usage(redis::client& conn, const std::string& prefix) {
  tier_usage out;
  const auto index = co_await usage_of(conn, prefix + "compact:index", "ZCARD");
  out.index_bytes = index.bytes;
  out.buckets = index.entries;
  if (index.entries == 0) {
    co_return out;
  }
  redis::request req;
  req.push("ZRANGE", prefix + "compact:index", 0, -1);
  redis::response<std::vector<std::string>> resp;
  co_await conn.exec(req, resp);
  for (const auto& b : std::get<0>(resp).value()) {
    const auto records = co_await usage_of(conn, prefix + "compact:" + b, "HLEN");
    const auto due = co_await usage_of(conn, prefix + "compact:" + b + ":due", "ZCARD");
    out.tasks += records.entries;
    out.record_bytes += records.bytes;
    out.due_bytes += due.bytes;
    out.listpack_records += records.encoding == "listpack" ? 1 : 0;
    out.listpack_due += due.encoding == "listpack" ? 1 : 0;
  }
  co_return out;
}

asio::awaitable<void> drive(corvo::bench::schedule_setup& setup, const bench_options& o) {
  auto& tasks = setup.store();
  auto& conn = *setup.client();
  auto ex = co_await asio::this_coro::executor;

  if (o.listpack_value > 0) {
    redis::request set;
    set.push("CONFIG", "SET", "hash-max-listpack-value", o.listpack_value);
    redis::response<std::string> ok;
    co_await conn.exec(set, ok);
    std::get<0>(ok).value();
  }
  // Load the schedule script and create nothing: the baseline holds the script cache.
  {
    task warm_up;
    warm_up.id = "warm-up";
    warm_up.type = "bench";
    warm_up.due = now() + 1h;
    co_await tasks.schedule(warm_up);
    co_await tasks.cancel(warm_up.id);
  }
  const auto before = co_await memory_info(conn);

  stored_sizes sizes;
  const auto base = now() + 1h;
  const auto start = std::chrono::steady_clock::now();
  {
    corvo::task_group writers(ex);
    for (std::size_t w = 0; w < o.concurrency && w < o.tasks; ++w) {
      co_await writers.spawn(write_tasks(tasks, o, w, base, sizes));
    }
    co_await writers.join();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto after = co_await memory_info(conn);

  const auto n = static_cast<double>(o.tasks);
  const auto listpack_limit = co_await listpack_value(conn);
  corvo::bench::emit({{"bench", "schedule-memory"},
                      {"impl", "corvo"},
                      {"metric", "insert"},
                      {"n", o.tasks},
                      {"per_s", n / seconds},
                      {"seconds", seconds},
                      {"concurrency", o.concurrency},
                      {"shards", o.shards},
                      {"compact", o.compact},
                      {"hash_max_listpack_value", listpack_limit}});

  const double bytes = after.at("used_memory") - before.at("used_memory");
  const double per_task = bytes / n;
  const double payload = static_cast<double>(sizes.payload) / n;
  const double overhead = per_task - payload;
  corvo::bench::emit(
      {{"bench", "schedule-memory"},
       {"impl", "corvo"},
       {"metric", "used_memory"},
       {"n", o.tasks},
       {"used_memory_before", before.at("used_memory")},
       {"used_memory_after", after.at("used_memory")},
       {"bytes", bytes},
       {"bytes_per_task", per_task},
       {"payload_bytes_per_task", payload},
       {"overhead_per_task", overhead},
       {"record_bytes_per_task", static_cast<double>(sizes.record) / n},
       {"id_bytes_per_task", static_cast<double>(sizes.id) / n},
       {"dataset_bytes_per_task",
        (after.at("used_memory_dataset") - before.at("used_memory_dataset")) / n},
       {"clients_bytes", after.at("mem_clients_normal") - before.at("mem_clients_normal")}});

  // Where the bytes go, from one shard's keys. MEMORY USAGE counts a dict entry as
  // sizeof(dictEntry), 24 bytes, where jemalloc hands out 32: with hashtable and skiplist
  // encodings the sum is 16 bytes per task below the used_memory figure.
  const auto keys = setup.redis_store()->keys_of(0);
  const auto records = co_await usage_of(conn, keys[1], "HLEN");
  if (records.entries > 0) {
    const auto due = co_await usage_of(conn, keys[0], "ZCARD");
    const double shard_tasks = static_cast<double>(records.entries);
    const double due_per_task = static_cast<double>(due.bytes) / shard_tasks;
    const double tasks_per_task = static_cast<double>(records.bytes) / shard_tasks;
    corvo::bench::emit({{"bench", "schedule-memory"},
                        {"impl", "corvo"},
                        {"metric", "breakdown"},
                        {"shard", 0},
                        {"tasks", records.entries},
                        {"due_key", keys[0]},
                        {"due_entries", due.entries},
                        {"due_encoding", due.encoding},
                        {"due_bytes", due.bytes},
                        {"due_bytes_per_task", due_per_task},
                        {"tasks_key", keys[1]},
                        {"tasks_encoding", records.encoding},
                        {"tasks_bytes", records.bytes},
                        {"tasks_bytes_per_task", tasks_per_task},
                        {"sum_bytes_per_task", due_per_task + tasks_per_task}});
  }

  // The compact tier of shard 0: every bucket (records, due times) and the index.
  const auto tier = co_await compact_usage(conn, keys[1].substr(0, keys[1].size() - 5));
  if (tier.tasks > 0) {
    const double shard_tasks = static_cast<double>(tier.tasks);
    corvo::bench::emit(
        {{"bench", "schedule-memory"},
         {"impl", "corvo"},
         {"metric", "compact_breakdown"},
         {"shard", 0},
         {"tasks", tier.tasks},
         {"buckets", tier.buckets},
         {"records_listpack_buckets", tier.listpack_records},
         {"due_listpack_buckets", tier.listpack_due},
         {"records_bytes_per_task", static_cast<double>(tier.record_bytes) / shard_tasks},
         {"due_bytes_per_task", static_cast<double>(tier.due_bytes) / shard_tasks},
         {"index_bytes_per_task", static_cast<double>(tier.index_bytes) / shard_tasks},
         {"sum_bytes_per_task",
          static_cast<double>(tier.record_bytes + tier.due_bytes + tier.index_bytes) /
              shard_tasks}});
  }

  // Issue 15: at most 250 bytes per task in all, with a 100-byte payload and UUID ids.
  constexpr double target = 250;
  corvo::bench::emit({{"bench", "schedule-memory"},
                      {"impl", "corvo"},
                      {"metric", "target"},
                      {"payload_bytes_per_task", payload},
                      {"bytes_per_task", per_task},
                      {"overhead_per_task", overhead},
                      {"target_max", target},
                      {"result", per_task <= target ? "PASS" : "FAIL"}});
}

}  // namespace

int main(int argc, char** argv) {
  bench_options o;
  po::options_description options("schedule-memory");
  options.add_options()("help", "this text")("tasks", po::value(&o.tasks)->default_value(o.tasks),
                                             "tasks to schedule")(
      "payload-bytes", po::value(&o.payload_bytes)->default_value(o.payload_bytes),
      "serialized JSON payload per task")("shards", po::value(&o.shards)->default_value(o.shards),
                                          "shards of the namespace")(
      "concurrency", po::value(&o.concurrency)->default_value(o.concurrency),
      "concurrent schedule() callers (pipelined on one connection)")(
      "id-bytes", po::value(&o.id_bytes)->default_value(o.id_bytes),
      "pad task ids (task-<n>) with zeros to this length; 0: no padding")(
      "compact", po::value(&o.compact)->default_value(o.compact),
      "1: the compact tier (redis_store_options::compact), 0: every task in the due sets")(
      "listpack-value", po::value(&o.listpack_value)->default_value(o.listpack_value),
      "CONFIG SET hash-max-listpack-value first; 0: the server's default (64)");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  if (o.tasks == 0 || o.concurrency == 0) {
    std::cerr << "--tasks and --concurrency must be at least 1\n";
    return 2;
  }
  corvo::log::init({.min_severity = corvo::log::severity::warning});

  asio::io_context ctx(1);
  auto setup =
      corvo::bench::schedule_setup::open(ctx, "redis", {.shards = o.shards, .compact = o.compact});
  asio::co_spawn(ctx, drive(*setup, o), setup->on_done());
  ctx.run();
  return 0;
}
