// The cluster client against a real 6-node cluster: keys over all slots reach their owner
// and read back, multi-key requests that span slots fail before sending, scripts and
// transactions run per slot, route hints pick the node, blocking commands run on a
// dedicated client, the same code runs on a standalone server through `client`, and each
// node's request counters (and their ops metrics) count exactly the requests sent to it.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/core/backoff.hpp>
#include <corvo/core/config.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/ops/collectors.hpp>
#include <corvo/ops/metrics.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/redis/cluster/cluster_client.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <corvo/redis/script.hpp>
#include <map>
#include <set>

#include "support/redis_cluster.hpp"
#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using corvo::test::redis_cluster;

namespace {

// One cluster for every case of this file (creating one takes seconds); the cases leave
// the topology as they found it.
redis_cluster& shared_cluster() {
  static redis_cluster cluster;
  return cluster;
}

redis::cluster_options options_for(redis_cluster& cluster) {
  redis::cluster_options opts;
  opts.seeds = cluster.seed_urls();
  opts.node.reconnect_backoff = {10ms, 100ms};
  opts.min_refresh_interval = 100ms;
  return opts;
}

// Runs a client in the background for the duration of a test body.
template <class Client>
struct running {
  template <class Config>
  running(asio::io_context& ctx, Config cfg) : client(ctx.get_executor(), std::move(cfg)) {
    asio::co_spawn(ctx, client.run(), [this](std::exception_ptr e) {
      run_error = e;
      run_done = true;
    });
  }
  ~running() { client.cancel(); }
  Client client;
  std::exception_ptr run_error;
  bool run_done = false;
};

asio::awaitable<void> wait_for_topology(redis::cluster_client& client) {
  for (int i = 0; i < 5000 && !client.has_topology(); ++i) {
    co_await corvo::sleep_for(2ms);
  }
  BOOST_REQUIRE(client.has_topology());
}

// ---- 10,000 keys ---------------------------------------------------------------------

struct bulk_outcome {
  int written = 0;
  int read_back = 0;
  int mismatches = 0;
  std::set<std::uint16_t> slots;
};

std::string key_of(int i) {
  return "key:" + std::to_string(i);
}
std::string value_of(int i) {
  return "value-" + std::to_string(i * 31);
}

asio::awaitable<void> write_keys(redis::cluster_client& client, int first, int count,
                                 bulk_outcome& out) {
  for (int i = first; i < first + count; ++i) {
    redis::request req;
    req.push("SET", key_of(i), value_of(i));
    req.push("GET", key_of(i));  // same key: same slot, one pipeline
    redis::response<std::string, std::string> resp;
    co_await client.exec(req, resp);
    if (std::get<0>(resp).value() == "OK" && std::get<1>(resp).value() == value_of(i)) {
      ++out.written;
    }
    out.slots.insert(redis::key_slot(key_of(i)));
  }
}

asio::awaitable<void> read_keys(redis::cluster_client& client, int first, int count,
                                bulk_outcome& out) {
  for (int i = first; i < first + count; ++i) {
    redis::request req;
    req.push("GET", key_of(i));
    redis::response<std::optional<std::string>> resp;
    co_await client.exec(req, resp);
    const auto& value = std::get<0>(resp).value();
    if (value && *value == value_of(i)) {
      ++out.read_back;
    } else {
      ++out.mismatches;
    }
  }
}

asio::awaitable<void> ten_thousand_keys(redis::cluster_client& client, bulk_outcome& out) {
  co_await wait_for_topology(client);
  corvo::task_group workers(co_await asio::this_coro::executor);
  for (int w = 0; w < 50; ++w) {
    co_await workers.spawn(write_keys(client, w * 200, 200, out));
  }
  co_await workers.join();
  for (int w = 0; w < 50; ++w) {
    co_await workers.spawn(read_keys(client, w * 200, 200, out));
  }
  co_await workers.join();
}

// ---- CROSSSLOT -----------------------------------------------------------------------

asio::awaitable<void> cross_slot(redis::cluster_client& client, boost::system::error_code& ec,
                                 std::string& message) {
  co_await wait_for_topology(client);
  redis::request req;
  req.push("MSET", "foo", "1", "bar", "2");
  try {
    co_await client.exec(req);
  } catch (const boost::system::system_error& e) {
    ec = e.code();
    message = e.what();
  }
}

// ---- scripts, transactions, hints ----------------------------------------------------

const redis::script add_and_get(R"lua(
  redis.call('INCRBY', KEYS[1], ARGV[1])
  redis.call('INCRBY', KEYS[2], ARGV[1])
  return redis.call('GET', KEYS[1]) .. ':' .. redis.call('GET', KEYS[2])
)lua");

struct per_slot_outcome {
  std::vector<std::string> script_results;
  std::vector<long long> transaction;
  std::string node_id_for_hint;
  std::string pong;
};

asio::awaitable<void> scripts_and_transactions(redis::cluster_client& client,
                                               redis_cluster& cluster, per_slot_outcome& out) {
  co_await wait_for_topology(client);
  const std::vector<std::string> keys{"{tenant:7}:a", "{tenant:7}:b"};
  const std::vector<std::string> three{"3"};
  redis::response<std::string> resp;
  co_await add_and_get.exec(client, keys, three, resp);  // NOSCRIPT: loaded on every master
  out.script_results.push_back(std::get<0>(resp).value());
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    cluster.node(i).cli("SCRIPT", "FLUSH");
  }
  co_await add_and_get.exec(client, keys, three, resp);  // flushed: loaded again
  out.script_results.push_back(std::get<0>(resp).value());

  redis::request tx;
  tx.push("MULTI");
  tx.push("INCR", "{tenant:7}:a");
  tx.push("INCRBY", "{tenant:7}:b", 10);
  tx.push("EXEC");
  redis::response<redis::ignore_t, redis::ignore_t, redis::ignore_t, std::vector<long long>>
      tx_resp;
  co_await client.exec(tx, tx_resp);
  out.transaction = std::get<3>(tx_resp).value();

  redis::request myid;
  myid.push("CLUSTER", "MYID");
  redis::response<std::string> id;
  co_await client.exec(myid, id, redis::route_hint::for_slot(12182));
  out.node_id_for_hint = std::get<0>(id).value();

  redis::request ping;
  ping.push("PING");
  redis::response<std::string> pong;
  co_await client.exec(ping, pong);
  out.pong = std::get<0>(pong).value();
}

// ---- dedicated client ----------------------------------------------------------------

struct blocking_outcome {
  std::optional<std::vector<std::string>> popped;
  boost::system::error_code shared_error;
};

asio::awaitable<void> push_later(redis::cluster_client& client) {
  co_await corvo::sleep_for(200ms);
  redis::request req;
  req.push("RPUSH", "{jobs}:queue", "job-1");
  co_await client.exec(req);
}

asio::awaitable<void> blocking_pop(redis::cluster_client& client, blocking_outcome& out) {
  co_await wait_for_topology(client);
  auto worker = client.dedicated();
  asio::co_spawn(co_await asio::this_coro::executor, worker->run(), [](std::exception_ptr) {});

  redis::request shared_blpop;
  shared_blpop.push("BLPOP", "{jobs}:queue", 1);
  try {
    co_await client.exec(shared_blpop);
  } catch (const boost::system::system_error& e) {
    out.shared_error = e.code();
  }

  asio::co_spawn(co_await asio::this_coro::executor, push_later(client), asio::detached);
  redis::request blpop;
  blpop.push("BLPOP", "{jobs}:queue", 5);
  redis::response<std::optional<std::vector<std::string>>> resp;
  co_await worker->exec(blpop, resp);
  out.popped = std::get<0>(resp).value();
  worker->cancel();
}

// ---- a slot nobody serves ------------------------------------------------------------

struct unserved_outcome {
  boost::system::error_code ec;
  std::chrono::steady_clock::duration took{};
};

asio::awaitable<void> use_unserved_slot(redis::cluster_client& client, unserved_outcome& out) {
  co_await wait_for_topology(client);
  redis::request req;
  req.push("SET", "{unserved}", "x");
  const auto start = std::chrono::steady_clock::now();
  try {
    co_await client.exec(req);
  } catch (const boost::system::system_error& e) {
    out.ec = e.code();
  }
  out.took = std::chrono::steady_clock::now() - start;
}

// ---- one API -------------------------------------------------------------------------

// Written once for `redis::client`, run against a standalone server and against the
// cluster.
asio::awaitable<void> same_code(redis::client& client, std::vector<std::string>& out) {
  redis::request req;
  req.push("DEL", "{cart:9}:items", "{cart:9}:total");
  req.push("RPUSH", "{cart:9}:items", "apple", "pear");
  req.push("INCRBY", "{cart:9}:total", 42);
  req.push("LRANGE", "{cart:9}:items", 0, -1);
  redis::response<long long, long long, long long, std::vector<std::string>> resp;
  for (int attempt = 0;; ++attempt) {
    try {
      co_await client.exec(req, resp);
      break;
    } catch (const boost::system::system_error&) {
      if (attempt > 200) {
        throw;
      }
    }
    co_await corvo::sleep_for(10ms);  // not connected yet
  }
  out.push_back(std::to_string(std::get<2>(resp).value()));
  for (const auto& item : std::get<3>(resp).value()) {
    out.push_back(item);
  }
}

// ---- per-node counters ---------------------------------------------------------------

// 2, 3 and 4 GETs to keys of the three masters: each master's node counters grow by exactly
// that many, the client's totals by 9, with no error and no redirection (provided no
// topology refresh ran meanwhile: the client refreshes every minute, or on a MOVED). Then
// 1, 2 and 3 failing requests: each master's error counter is exactly that.
asio::awaitable<void> count_per_node(redis::client& client, corvo::ops::registry& metrics) {
  auto& cluster = *client.cluster();
  co_await wait_for_topology(cluster);
  const auto map = cluster.topology();
  std::map<std::string, std::string> key_of_node;  // a key each master owns
  for (int i = 0; key_of_node.size() < map.shards().size(); ++i) {
    const auto key = "count:" + std::to_string(i);
    key_of_node.emplace(map.master_of(redis::key_slot(key))->address(), key);
  }
  BOOST_TEST_REQUIRE(key_of_node.size() == 3U);
  auto node_value = [&](const std::string& name, const std::string& address) {
    return metrics.value(name, {{"client", "c"}, {"node", address}});
  };
  const corvo::ops::label_set client_label{{"client", "c"}};
  metrics.render();
  const auto refreshes = cluster.stats().refreshes;
  const double total_before = metrics.value("corvo_redis_requests_total", client_label);
  std::map<std::string, double> before;
  for (const auto& [address, key] : key_of_node) {
    before[address] = node_value("corvo_redis_node_requests_total", address);
    BOOST_TEST_REQUIRE(before[address] >= 0);  // the series exists: the node is connected
  }
  std::map<std::string, int> sent;
  int count = 2;
  for (const auto& [address, key] : key_of_node) {
    for (int i = 0; i < count; ++i) {
      redis::request get;
      get.push("GET", key);
      co_await client.exec(get);
    }
    sent[address] = count++;
  }
  metrics.render();
  BOOST_TEST_REQUIRE(cluster.stats().refreshes == refreshes);
  for (const auto& [address, key] : key_of_node) {
    BOOST_TEST(
        node_value("corvo_redis_node_requests_total", address) == before[address] + sent[address],
        address);
    BOOST_TEST(node_value("corvo_redis_node_request_errors_total", address) == 0, address);
    BOOST_TEST(node_value("corvo_redis_node_connects_total", address) == 1, address);
  }
  const double total = metrics.value("corvo_redis_requests_total", client_label);
  BOOST_TEST(total == total_before + 9);
  BOOST_TEST(metrics.value("corvo_redis_request_duration_seconds", client_label) == total);
  BOOST_TEST(metrics.value("corvo_redis_request_errors_total", client_label) == 0);
  BOOST_TEST(metrics.value("corvo_redis_moved_total", client_label) == 0);
  double sum_of_nodes = 0;
  for (const auto& [address, st] : cluster.node_stats()) {
    sum_of_nodes += static_cast<double>(st.requests);
  }
  BOOST_TEST(sum_of_nodes == total);

  // Failed requests are counted on the node that failed them: 1, 2 and 3 BLPOPs sent to the
  // three masters through the shared (non-blocking) node connections each fail there with
  // blocking_on_shared_connection; they are errors, not requests.
  std::map<std::string, int> failed;
  int errors = 1;
  for (const auto& [address, key] : key_of_node) {
    for (int i = 0; i < errors; ++i) {
      redis::request pop;
      pop.push("BLPOP", key, 1);
      boost::system::error_code ec;
      try {
        co_await client.exec(pop);
      } catch (const boost::system::system_error& e) {
        ec = e.code();
      }
      BOOST_TEST((ec == redis::error::blocking_on_shared_connection), address << ": " << ec.message());
    }
    failed[address] = errors++;
  }
  metrics.render();
  BOOST_TEST_REQUIRE(cluster.stats().refreshes == refreshes);
  for (const auto& [address, key] : key_of_node) {
    BOOST_TEST(node_value("corvo_redis_node_request_errors_total", address) == failed[address],
               address);
    BOOST_TEST(
        node_value("corvo_redis_node_requests_total", address) == before[address] + sent[address],
        address);
  }
  BOOST_TEST(metrics.value("corvo_redis_request_errors_total", client_label) == 6);
  BOOST_TEST(metrics.value("corvo_redis_requests_total", client_label) == total);
  std::uint64_t errors_of_nodes = 0;
  for (const auto& [address, st] : cluster.node_stats()) {
    errors_of_nodes += st.request_errors;
  }
  BOOST_TEST(errors_of_nodes == 6u);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_cluster_routing)

BOOST_AUTO_TEST_CASE(ten_thousand_keys_across_all_slots_read_back_correct) {
  auto& cluster = shared_cluster();
  asio::io_context ctx;
  running<redis::cluster_client> rc(ctx, options_for(cluster));
  bulk_outcome out;
  const auto start = std::chrono::steady_clock::now();
  corvo::test::run(ctx, ten_thousand_keys(rc.client, out), [&] { rc.client.cancel(); });
  BOOST_TEST_MESSAGE("10,000 SET+GET and 10,000 GET in "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count()
                     << " ms");
  BOOST_TEST(out.written == 10000);
  BOOST_TEST(out.read_back == 10000);
  BOOST_TEST(out.mismatches == 0);
  BOOST_TEST(out.slots.size() > 7000U);  // 10,000 keys hit about 7,500 of the 16,384 slots
  BOOST_TEST(rc.client.stats().moved == 0U);
  // Each key is stored on the master that owns its slot, and every master got some.
  std::size_t total = 0;
  for (std::size_t m : cluster.masters()) {
    const auto keys = std::stoul(cluster.node(m).cli("DBSIZE"));
    BOOST_TEST(keys > 2000U);
    total += keys;
  }
  BOOST_TEST(total >= 10000U);
  const auto owner = cluster.node_for_slot(redis::key_slot(key_of(1234)));
  BOOST_TEST(cluster.node(owner).cli("GET", key_of(1234)) == value_of(1234));
  BOOST_TEST(rc.run_done);
  BOOST_TEST(!rc.run_error);
}

BOOST_AUTO_TEST_CASE(keys_spanning_slots_fail_before_sending_and_name_the_keys) {
  auto& cluster = shared_cluster();
  asio::io_context ctx;
  running<redis::cluster_client> rc(ctx, options_for(cluster));
  boost::system::error_code ec;
  std::string message;
  corvo::test::run(ctx, cross_slot(rc.client, ec, message), [&] { rc.client.cancel(); });
  BOOST_TEST(ec == boost::system::error_code(redis::error::crossslot));
  BOOST_TEST(message.find("'foo'") != std::string::npos, message);
  BOOST_TEST(message.find("'bar'") != std::string::npos, message);
  BOOST_TEST(cluster.node(0).cli("-c", "EXISTS", "foo") == "0");
}

BOOST_AUTO_TEST_CASE(scripts_transactions_and_route_hints_run_on_the_slot_owner) {
  auto& cluster = shared_cluster();
  cluster.node(0).cli("-c", "DEL", "{tenant:7}:a");
  cluster.node(0).cli("-c", "DEL", "{tenant:7}:b");
  asio::io_context ctx;
  auto opts = options_for(cluster);
  opts.use_cluster_shards = true;  // the other cases read CLUSTER SLOTS
  running<redis::cluster_client> rc(ctx, opts);
  per_slot_outcome out;
  corvo::test::run(ctx, scripts_and_transactions(rc.client, cluster, out),
                   [&] { rc.client.cancel(); });
  BOOST_TEST(out.script_results == (std::vector<std::string>{"3:3", "6:6"}));
  BOOST_TEST(out.transaction == (std::vector<long long>{7, 16}));
  BOOST_TEST(out.node_id_for_hint == cluster.node_id(cluster.node_for_slot(12182)));
  BOOST_TEST(out.pong == "PONG");
  BOOST_TEST(rc.client.topology().covered_slots() == 16384U);
}

BOOST_AUTO_TEST_CASE(blocking_commands_run_on_a_dedicated_client) {
  auto& cluster = shared_cluster();
  asio::io_context ctx;
  running<redis::cluster_client> rc(ctx, options_for(cluster));
  blocking_outcome out;
  corvo::test::run(ctx, blocking_pop(rc.client, out), [&] { rc.client.cancel(); });
  BOOST_TEST(out.shared_error ==
             boost::system::error_code(redis::error::blocking_on_shared_connection));
  BOOST_REQUIRE(out.popped.has_value());
  BOOST_TEST(*out.popped == (std::vector<std::string>{"{jobs}:queue", "job-1"}));
}

BOOST_AUTO_TEST_CASE(a_slot_nobody_serves_fails_with_cluster_down_after_the_deadline) {
  auto& cluster = shared_cluster();
  const int slot = redis::key_slot("{unserved}");
  const std::size_t owner = cluster.node_for_slot(slot);
  // The owner stops serving the slot: it answers CLUSTERDOWN for it.
  BOOST_REQUIRE(cluster.node(owner).cli("CLUSTER", "DELSLOTS", std::to_string(slot)) == "OK");
  asio::io_context ctx;
  auto opts = options_for(cluster);
  opts.retry_deadline = 500ms;
  running<redis::cluster_client> rc(ctx, opts);
  unserved_outcome out;
  corvo::test::run(ctx, use_unserved_slot(rc.client, out), [&] { rc.client.cancel(); });
  BOOST_REQUIRE(cluster.node(owner).cli("CLUSTER", "ADDSLOTS", std::to_string(slot)) == "OK");
  cluster.wait_for_state_ok();

  BOOST_TEST(out.ec == boost::system::error_code(redis::error::cluster_down), out.ec.message());
  BOOST_TEST(out.took >= 500ms);
  BOOST_TEST(out.took < 5s);
  BOOST_TEST(rc.client.stats().retries >= 2U);
}

BOOST_AUTO_TEST_CASE(one_client_api_for_standalone_and_cluster) {
  auto& cluster = shared_cluster();
  corvo::test::redis_server server;

  // From the application configuration: a URL is a standalone server, seeds a cluster.
  auto standalone_cfg = redis::client_config::from(
      corvo::config::from_string(R"({"redis": {"url": ")" + server.url() + R"("}})"));
  std::string seeds;
  for (const auto& url : cluster.seed_urls()) {
    seeds += (seeds.empty() ? "" : ",") + url;
  }
  auto cluster_cfg = redis::client_config::from(corvo::config::from_string(
      R"({"redis": {"cluster": {"seeds": ")" + seeds + R"(", "retry_deadline": "5s"}}})"));
  BOOST_TEST(!standalone_cfg.is_cluster());
  BOOST_TEST(cluster_cfg.is_cluster());
  BOOST_TEST(cluster_cfg.cluster->seeds.size() == 6U);
  BOOST_TEST(cluster_cfg.cluster->retry_deadline.count() == 5000);
  BOOST_CHECK_THROW(redis::client_config::from(corvo::config::from_string(R"({"redis": {}})")),
                    corvo::config_error);

  std::vector<std::string> from_standalone, from_cluster;
  {
    asio::io_context ctx;
    running<redis::client> rc(ctx, standalone_cfg);
    corvo::test::run(ctx, same_code(rc.client, from_standalone), [&] { rc.client.cancel(); });
    BOOST_TEST(!rc.client.is_cluster());
  }
  {
    asio::io_context ctx;
    running<redis::client> rc(ctx, cluster_cfg);
    corvo::test::run(ctx, same_code(rc.client, from_cluster), [&] { rc.client.cancel(); });
    BOOST_TEST(rc.client.is_cluster());
  }
  BOOST_TEST(from_standalone == (std::vector<std::string>{"42", "apple", "pear"}));
  BOOST_TEST(from_cluster == from_standalone);
}

BOOST_AUTO_TEST_CASE(node_counters_count_each_nodes_requests) {
  auto& cluster = shared_cluster();
  asio::io_context ctx;
  redis::client_config cfg;
  cfg.cluster = options_for(cluster);
  running<redis::client> rc(ctx, cfg);
  corvo::ops::registry metrics;
  corvo::ops::watch_redis(metrics, rc.client, "c");
  corvo::test::run(ctx, count_per_node(rc.client, metrics), [&] { rc.client.cancel(); });
}

BOOST_AUTO_TEST_SUITE_END()
