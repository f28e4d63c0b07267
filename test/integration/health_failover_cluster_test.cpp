// Failover by cancellation on a 6-node Redis Cluster (issue 16): health per slot owner.
//
// Three user components, each writing a key that lives on a different master, each
// supervised on the slot dependency of its key (redis_cluster_health::slot_dependency).
// - kill -9 of one master: only the component whose key lives there stops (within the
//   probe budget); the two others keep running untouched; it restarts once the replica is
//   promoted and answers.
// - two masters down: the surviving master reports cluster_state:fail, which stops every
//   component (the one on the healthy master too); restarting the two nodes restarts all.
// The cluster runs with cluster-require-full-coverage no, so one failed master does not
// fail the whole cluster while its replica takes over. Timings are printed; bounds are
// generous. Not covered yet: the scheduler's shard loops per slot owner (the dispatcher has
// no per-shard pause yet) and the stream consumer (built on another branch).
#include <boost/asio/post.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/health/app.hpp>
#include <corvo/health/probes.hpp>
#include <corvo/redis/client.hpp>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "support/redis_cluster.hpp"

namespace asio = boost::asio;
namespace health = corvo::health;
namespace redis = corvo::redis;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = steady::now() + limit;
  while (!done()) {
    if (steady::now() > deadline)
      return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

long ms(steady::duration d) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

asio::awaitable<void> writer(redis::client* redis, health::dependency dep, std::string key) {
  for (;;) {
    redis::request req;
    req.push("INCR", key);
    try {
      co_await redis->exec(req);
    } catch (const boost::system::system_error& e) {
      if (e.code() != asio::error::operation_aborted) {
        dep.report_failure(std::string("writer: ") + e.what());
      }
      throw;
    }
    co_await corvo::sleep_for(20ms);
  }
}

struct life {
  bool running = false;
  std::uint64_t starts = 0;
  std::uint64_t stops = 0;
  steady::time_point stopped{};
  steady::time_point started{};
};

// The app on its own thread: a cluster client, the cluster's health, one writer per key.
class cluster_process {
 public:
  cluster_process(const std::vector<std::string>& seeds, const std::vector<std::string>& keys)
      : app_(options()) {
    client_ = std::make_unique<redis::client>(app_.get_executor(),
                                              redis::client_config::from_cluster_seeds(seeds));
    app_.add_service("redis", [c = client_.get()] { return c->run(); });
    health::probe_options probes;
    probes.interval = 100ms;
    probes.timeout = 500ms;  // a healthy master under CI load answers well inside it
    cluster_ = std::make_unique<health::redis_cluster_health>(app_.monitor(), *client_->cluster(),
                                                              "redis", probes);
    for (const auto& key : keys) {
      const auto dep = cluster_->slot_dependency(key);
      auto* c = client_.get();
      app_.add_component({"writer " + key, [c, dep, key] { return writer(c, dep, key); }}, {dep});
    }
    for (auto* s : app_.supervisions()) {
      lives_[s->name()];
      s->on_transition([this](const health::supervision& s, health::supervision_state,
                              health::supervision_state to) {
        std::lock_guard lock(mutex_);
        auto& l = lives_[s.name()];
        l.starts = s.stats().starts;
        l.stops = s.stats().stops;
        if (to == health::supervision_state::running) {
          l.running = true;
          l.started = steady::now();
        } else if (l.running) {
          l.running = false;
          l.stopped = steady::now();
        }
      });
    }
    loop_ = std::thread([this] { app_.run(); });
  }

  ~cluster_process() {
    asio::post(app_.get_executor(), [this] { app_.request_stop(); });
    loop_.join();
  }

  life of(const std::string& key) {
    std::lock_guard lock(mutex_);
    return lives_.at("writer " + key);
  }

  health::status cluster_state() {
    std::promise<health::status> p;
    asio::post(app_.get_executor(), [&] { p.set_value(cluster_->cluster().state()); });
    return p.get_future().get();
  }

  std::string cluster_detail() {
    std::promise<std::string> p;
    asio::post(app_.get_executor(),
               [&] { p.set_value(app_.monitor().report(cluster_->cluster()).detail); });
    return p.get_future().get();
  }

 private:
  static health::app_options options() {
    health::app_options o;
    o.policy.stop_timeout = 1s;
    o.policy.restart_backoff = {20ms, 500ms};
    o.stop_signals = {};
    o.shutdown_deadline = 10s;
    return o;
  }

  health::app app_;
  std::unique_ptr<redis::client> client_;
  std::unique_ptr<health::redis_cluster_health> cluster_;
  std::mutex mutex_;
  std::map<std::string, life> lives_;
  std::thread loop_;
};

// One key per master (by index of the master node in the fixture).
std::map<std::size_t, std::string> key_per_master(corvo::test::redis_cluster& cluster) {
  std::map<std::size_t, std::string> out;
  for (int i = 0; out.size() < 3 && i < 1000; ++i) {
    const auto key = "{health-" + std::to_string(i) + "}:counter";
    const auto owner = cluster.node_for_slot(cluster.key_slot(key));
    out.try_emplace(owner, key);
  }
  return out;
}

corvo::test::redis_cluster_options cluster_options() {
  corvo::test::redis_cluster_options o;
  o.extra_config = {"cluster-require-full-coverage no"};
  return o;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(health_failover_cluster)

BOOST_AUTO_TEST_CASE(a_master_down_stops_only_its_components) {
  corvo::test::redis_cluster cluster(cluster_options());
  const auto keys = key_per_master(cluster);
  BOOST_TEST_REQUIRE(keys.size() == 3u);
  std::vector<std::string> key_list;
  for (const auto& [node, key] : keys)
    key_list.push_back(key);
  cluster_process p(cluster.seed_urls(), key_list);
  BOOST_TEST_REQUIRE(wait_until(
      [&] {
        for (const auto& k : key_list)
          if (!p.of(k).running)
            return false;
        return true;
      },
      30s));

  const auto victim = keys.begin()->first;
  const auto victim_key = keys.begin()->second;
  const auto killed_at = steady::now();
  cluster.kill_node(victim);
  BOOST_TEST_REQUIRE(wait_until([&] { return !p.of(victim_key).running; }, 10s));
  const auto stopped = p.of(victim_key).stopped - killed_at;
  std::cout << "master " << victim << " killed: " << victim_key << " stopped after " << ms(stopped)
            << " ms\n";
  BOOST_TEST(ms(stopped) <= 2 * (100 + 500 + 1000));  // 2 × (interval + timeout + stop_timeout)
  // The others never stopped, while the victim's slot is down and until it is back.
  cluster.wait_for_failover(victim);
  BOOST_TEST_REQUIRE(wait_until([&] { return p.of(victim_key).running; }, 30s));
  std::cout << "  restarted " << ms(p.of(victim_key).started - killed_at)
            << " ms after the kill (node timeout 1 s, then the replica's promotion)\n";
  for (const auto& k : key_list) {
    const auto l = p.of(k);
    if (k == victim_key) {
      BOOST_TEST(l.starts == 2u);
      BOOST_TEST(l.stops == 1u);
    } else {
      BOOST_TEST(l.starts == 1u, k << " kept running");
      BOOST_TEST(l.stops == 0u, k << " kept running");
      BOOST_TEST(l.running);
    }
  }
}

BOOST_AUTO_TEST_CASE(cluster_state_fail_stops_all_and_recovery_restarts_all) {
  corvo::test::redis_cluster cluster(cluster_options());
  const auto keys = key_per_master(cluster);
  BOOST_TEST_REQUIRE(keys.size() == 3u);
  std::vector<std::string> key_list;
  std::vector<std::size_t> masters;
  for (const auto& [node, key] : keys) {
    key_list.push_back(key);
    masters.push_back(node);
  }
  cluster_process p(cluster.seed_urls(), key_list);
  const auto all_running = [&] {
    for (const auto& k : key_list)
      if (!p.of(k).running)
        return false;
    return true;
  };
  BOOST_TEST_REQUIRE(wait_until(all_running, 30s));

  // Two of three masters down: no quorum, no failover; the survivor says cluster_state:fail.
  const auto killed_at = steady::now();
  cluster.kill_node(masters[0]);
  cluster.kill_node(masters[1]);
  const auto survivor_key = keys.at(masters[2]);
  BOOST_TEST_REQUIRE(wait_until([&] { return !p.of(survivor_key).running; }, 30s));
  std::cout << "two masters killed: the component on the surviving master stopped after "
            << ms(p.of(survivor_key).stopped - killed_at) << " ms (cluster: " << p.cluster_detail()
            << ")\n";
  BOOST_TEST((p.cluster_state() == health::status::down));
  BOOST_TEST(p.cluster_detail().find("cluster_state:fail") != std::string::npos);
  for (const auto& k : key_list)
    BOOST_TEST(!p.of(k).running, k << " stopped");

  cluster.restart_node(masters[0]);
  cluster.restart_node(masters[1]);
  cluster.wait_for_state_ok();
  const auto ok_at = steady::now();
  BOOST_TEST_REQUIRE(wait_until(all_running, 30s));
  std::cout << "  all running again " << ms(steady::now() - ok_at)
            << " ms after the fixture saw cluster_state:ok\n";
  for (const auto& k : key_list)
    BOOST_TEST(p.of(k).starts == 2u, k);
}

BOOST_AUTO_TEST_SUITE_END()
