// Failover by cancellation on a 6-node Redis Cluster (issue 16): health per slot owner.
//
// One process (test/support/cluster_failover_process) runs, under a health::app:
// - one user "writer" component and one stream consumer component per master (keys and
//   streams chosen by owner), each supervised on the slot dependency of its key;
// - a scheduler dispatcher with 6 shards on the whole-cluster dependency, its shards gated
//   by health::shard_gate (a shard pauses while the master of `{gate:s}` is down);
// - producers: stream appends WAITed for a replica, tasks scheduled durably (WAIT 1).
// Cases:
// - kill -9 of one master: only its writer and stream consumer stop (within the probe
//   budget); the others and the scheduler keep running; the scheduler's shards on the dead
//   master make no claim while their dependency is down, while the other shards claim and
//   run tasks throughout; after the replica's promotion the stopped components restart and
//   nothing is lost (every replicated append handled, nothing left pending, every durably
//   scheduled task run; on the healthy masters each exactly once).
// - a hung master (SIGSTOP, socket open; its replica told not to fail over): its probe gets
//   no answer within the timeout, its slot dependencies go down, and only its writer and
//   stream consumer stop (within the probe budget), the consumer with an entry in flight
//   whose XACK goes to the hung master: the client drops its connections to that master
//   (redis_cluster_health::reset_when_down), so the stop does not wait for the reply
//   deadline; the other writers and consumers and the scheduler keep running, the
//   scheduler's shards on the hung master make no claim while it is down and the other
//   shards run tasks; SIGCONT: they run again. (Run at the start of the next case, on its
//   cluster: one 6-node fixture less.)
// - two masters down: the surviving master reports cluster_state:fail, which stops every
//   component (the scheduler too); restarting the two nodes (AOF, fsync always) restarts
//   all of them, and nothing produced before or after the outage is lost.
// The stream consumers run with the default drain_timeout (10 s): each stop is asserted
// under 300 ms, so none may wait out its drain for a master that cannot answer. The cluster
// runs with cluster-require-full-coverage no, so one failed master does not fail the whole
// cluster while its replica takes over. Timings are printed; bounds are
// generous.
#include <signal.h>

#include <boost/test/unit_test.hpp>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "support/cluster_failover_process.hpp"
#include "support/redis_cluster.hpp"

namespace health = corvo::health;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using corvo::test::cluster_failover_process;

namespace {

constexpr unsigned shard_count = 6;

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = steady::now() + limit;
  while (!done()) {
    if (steady::now() > deadline)
      return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

long ms(steady::duration d) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

// One key per master (by index of the master node in the fixture).
std::map<std::size_t, std::string> key_per_master(corvo::test::redis_cluster& cluster,
                                                  const std::string& prefix,
                                                  const std::string& suffix) {
  std::map<std::size_t, std::string> out;
  for (int i = 0; out.size() < 3 && i < 1000; ++i) {
    const auto key = "{" + prefix + std::to_string(i) + "}" + suffix;
    out.try_emplace(cluster.node_for_slot(cluster.key_slot(key)), key);
  }
  return out;
}

struct layout {
  std::map<std::size_t, std::string> writers, streams;
  std::map<unsigned, std::size_t> shard_owner;
  std::vector<std::size_t> masters;
  corvo::test::cluster_failover_options options;
};

layout make_layout(corvo::test::redis_cluster& cluster) {
  layout l;
  l.writers = key_per_master(cluster, "health-", ":counter");
  l.streams = key_per_master(cluster, "hs-", ":events");
  BOOST_TEST_REQUIRE(l.writers.size() == 3u);
  BOOST_TEST_REQUIRE(l.streams.size() == 3u);
  for (const auto& [node, key] : l.writers) {
    l.masters.push_back(node);
    l.options.writer_keys.push_back(key);
    l.options.stream_keys.push_back(l.streams.at(node));
  }
  for (unsigned s = 0; s < shard_count; ++s) {
    l.shard_owner[s] = cluster.node_for_slot(cluster.key_slot("{gate:" + std::to_string(s) + "}"));
  }
  l.options.seeds = cluster.seed_urls();
  l.options.name_space = "gate";
  l.options.shards = shard_count;
  return l;
}

bool all_running(cluster_failover_process& p) {
  for (const auto& c : p.components())
    if (!p.life(c).running)
      return false;
  return true;
}

bool none_running(cluster_failover_process& p) {
  for (const auto& c : p.components())
    if (p.life(c).running)
      return false;
  return true;
}

// Streams and every shard are being consumed.
bool consuming(cluster_failover_process& p, const std::vector<std::string>& streams,
               std::size_t min_entries, std::size_t min_tasks_per_shard) {
  for (const auto& key : streams)
    if (p.stream(key).runs.size() < min_entries)
      return false;
  const auto t = p.scheduler();
  for (unsigned s = 0; s < shard_count; ++s) {
    const auto it = t.started.find(s);
    if (it == t.started.end() || it->second.size() < min_tasks_per_shard)
      return false;
  }
  return true;
}

std::size_t count_between(const std::vector<steady::time_point>& times, steady::time_point from,
                          steady::time_point to) {
  std::size_t n = 0;
  for (const auto t : times)
    n += (t > from && t < to) ? 1 : 0;
  return n;
}

std::size_t pending_count(corvo::test::redis_cluster& cluster, const std::string& key) {
  const auto out =
      cluster.node(cluster.node_for_slot(cluster.key_slot(key))).cli("XPENDING", key, "g");
  return static_cast<std::size_t>(std::stoul(out.substr(0, out.find('\n'))));
}

std::uint64_t info_field(const std::string& info, const std::string& name) {
  const auto at = info.find(name + ":");
  BOOST_TEST_REQUIRE(at != std::string::npos, name << " in INFO replication");
  return std::stoull(info.substr(at + name.size() + 1));
}

// Waits until the replica of `master` has everything the master had written at the call.
bool replica_caught_up(corvo::test::redis_cluster& cluster, std::size_t master) {
  std::size_t replica = cluster.size();
  for (const auto& n : cluster.nodes())
    if (n.role == corvo::test::redis_role::replica && n.master_id == cluster.node_id(master))
      replica = n.index;
  BOOST_TEST_REQUIRE(replica < cluster.size());
  const auto target =
      info_field(cluster.node(master).cli("INFO", "replication"), "master_repl_offset");
  return wait_until(
      [&] {
        return info_field(cluster.node(replica).cli("INFO", "replication"), "slave_repl_offset") >=
               target;
      },
      10s);
}

// Stops the producers, then checks that every acknowledged append and every durably
// scheduled task was handled and nothing stays pending. Entries/tasks of `exactly_once`
// streams / shards ran once.
void check_nothing_lost(corvo::test::redis_cluster& cluster, cluster_failover_process& p,
                        const std::vector<std::string>& streams,
                        const std::set<std::string>& streams_once,
                        const std::set<unsigned>& shards_once) {
  p.stop_producing();
  const auto stream_missing = [&](const std::string& key) {
    const auto t = p.stream(key);
    std::size_t missing = 0;
    for (const auto& id : t.durable)
      missing += t.runs.contains(id) ? 0 : 1;
    return missing;
  };
  const auto tasks_missing = [&] {
    const auto t = p.scheduler();
    std::size_t missing = 0;
    for (const auto& [id, shard] : t.produced)
      missing += t.runs.contains(id) ? 0 : 1;
    return missing;
  };
  const bool complete = wait_until(
      [&] {
        for (const auto& key : streams)
          if (stream_missing(key) > 0)
            return false;
        return tasks_missing() == 0;
      },
      30s);
  for (const auto& key : streams) {
    const auto t = p.stream(key);
    std::size_t twice = 0;
    for (const auto& [id, runs] : t.runs)
      twice += runs > 1 ? 1 : 0;
    std::cout << "  " << key << ": " << t.durable.size() << " replicated appends ("
              << t.failed_batches << " batches failed), " << t.runs.size() << " handled, "
              << stream_missing(key) << " missing, " << twice << " handled twice\n";
    BOOST_TEST(stream_missing(key) == 0u, key << ": acknowledged entries not handled");
    if (streams_once.contains(key))
      BOOST_TEST(twice == 0u, key << ": entries handled twice");
  }
  const auto t = p.scheduler();
  std::map<unsigned, std::size_t> produced, twice;
  for (const auto& [id, shard] : t.produced) {
    ++produced[shard];
    const auto it = t.runs.find(id);
    twice[shard] += (it != t.runs.end() && it->second > 1) ? 1 : 0;
  }
  std::cout << "  tasks: " << t.produced.size() << " scheduled (" << t.failed_schedules
            << " schedule calls failed), " << tasks_missing() << " never ran\n";
  BOOST_TEST(tasks_missing() == 0u, "scheduled tasks never ran");
  for (unsigned s = 0; s < shard_count; ++s) {
    BOOST_TEST(produced[s] > 0u, "shard " << s << " got tasks");
    if (shards_once.contains(s))
      BOOST_TEST(twice[s] == 0u, "shard " << s << ": " << twice[s] << " tasks ran twice");
  }
  BOOST_TEST_REQUIRE(complete);
  // The consumers acknowledged everything (reclaiming what a dead master had delivered).
  bool drained = wait_until(
      [&] {
        for (const auto& key : streams)
          if (pending_count(cluster, key) != 0)
            return false;
        return true;
      },
      20s);
  for (const auto& key : streams)
    BOOST_TEST(pending_count(cluster, key) == 0u, key << ": entries left pending");
  BOOST_TEST(drained);
}

// SIGSTOPs master `hung` (its replica told not to fail over), checks that only the
// components whose keys it owns stop and that its scheduler shards pause while the other
// shards run tasks, then SIGCONTs it and waits until every component runs again.
void hang_one_master(corvo::test::redis_cluster& cluster, cluster_failover_process& p,
                     const layout& l, std::size_t hung) {
  std::size_t replica = cluster.size();
  for (const auto& n : cluster.nodes())
    if (n.role == corvo::test::redis_role::replica && n.master_id == cluster.node_id(hung))
      replica = n.index;
  BOOST_TEST_REQUIRE(replica < cluster.size());
  BOOST_TEST_REQUIRE(
      cluster.node(replica).cli("CONFIG", "SET", "cluster-replica-no-failover", "yes") == "OK");
  std::set<unsigned> hung_shards, healthy_shards;
  for (const auto& [s, owner] : l.shard_owner)
    (owner == hung ? hung_shards : healthy_shards).insert(s);
  BOOST_TEST_REQUIRE(!healthy_shards.empty());
  p.pause_producing(hung_shards);  // a schedule call to the hung master would hang
  const auto hung_writer = "writer " + l.writers.at(hung);
  const auto hung_stream = "stream " + l.streams.at(hung);
  std::map<std::string, corvo::test::component_life> before;
  for (const auto& c : p.components())
    before[c] = p.life(c);
  // The hung master's stream consumer holds one entry until its stop begins: its XACK then
  // goes to the hung master, which keeps the socket open and never answers.
  p.hold_next_entry(l.streams.at(hung));
  BOOST_TEST_REQUIRE(wait_until([&] { return !p.stream(l.streams.at(hung)).held.empty(); }, 10s));

  const auto hung_at = steady::now();
  BOOST_TEST_REQUIRE(::kill(cluster.node(hung).pid(), SIGSTOP) == 0);
  BOOST_TEST_REQUIRE(wait_until([&] { return !p.life(hung_stream).running; }, 10s));
  BOOST_TEST_REQUIRE(wait_until([&] { return !p.life(hung_writer).running; }, 10s));
  const auto stopped = std::max(p.life(hung_writer).stopped, p.life(hung_stream).stopped);
  const auto h = p.slot_history(l.streams.at(hung));
  BOOST_TEST_REQUIRE(!h.down.empty());
  const auto down_at = h.down.back();
  std::cout << "master " << hung << " hung (SIGSTOP): its slot dependency down after "
            << ms(down_at - hung_at) << " ms, its writer and stream consumer stopped after "
            << ms(stopped - hung_at) << " ms\n";
  // Detected by the probe timeout: interval + the round's bound (1.5 × the 500 ms timeout),
  // asserted at twice that; stopped within 2 × (interval + timeout + stop_timeout).
  BOOST_TEST((down_at > hung_at));
  BOOST_TEST(ms(down_at - hung_at) <= 2 * (100 + 750));
  BOOST_TEST(ms(stopped - hung_at) <= 2 * (100 + 500 + 1000));
  // The stops themselves, with the consumers' default drain_timeout (10 s) and the default
  // reply deadline (5 s): the hung master's connections are dropped when its slots go down
  // (redis_cluster_health::reset_when_down), so the held entry's XACK fails at once and is
  // given up (the entry stays pending) instead of holding the stop.
  for (const auto& c : {hung_writer, hung_stream}) {
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
          for (const auto& [began, took] : p.life(c).stop_log)
            if (began > hung_at)
              return true;
          return false;
        },
        20s));
    for (const auto& [began, took] : p.life(c).stop_log) {
      if (began > hung_at) {
        std::cout << "  " << c << " took " << took.count() << " ms to stop\n";
        BOOST_TEST(took.count() < 300, c);
      }
    }
  }

  // Hung for as long as every healthy shard takes to run 3 more tasks.
  BOOST_TEST_REQUIRE(wait_until(
      [&] {
        const auto t = p.scheduler();
        for (const auto s : healthy_shards)
          if (!t.started.contains(s) || count_between(t.started.at(s), stopped, steady::now()) < 3)
            return false;
        return true;
      },
      20s));
  const auto checked_at = steady::now();
  for (const auto& c : p.components()) {
    const auto life = p.life(c);
    if (c == hung_writer || c == hung_stream) {
      BOOST_TEST(!life.running, c);
      BOOST_TEST(life.starts == before[c].starts, c << " restarted while its master was hung");
      BOOST_TEST(life.stops == before[c].stops + 1, c);
    } else {
      BOOST_TEST(life.running, c);
      BOOST_TEST(life.starts == before[c].starts, c << " kept running");
      BOOST_TEST(life.stops == before[c].stops, c << " kept running");
    }
  }
  const auto t = p.scheduler();
  for (const auto s : hung_shards) {
    const auto gate = p.slot_history("{gate:" + std::to_string(s) + "}");
    BOOST_TEST_REQUIRE(!gate.down.empty(), "shard " << s << " went down");
    const auto claims =
        t.claims.contains(s) ? count_between(t.claims.at(s), gate.down.back(), checked_at) : 0;
    std::cout << "  hung shard " << s << ": " << claims << " claims while down\n";
    BOOST_TEST(claims == 0u, "shard " << s << " claimed while its master was hung");
  }

  const auto resumed_at = steady::now();
  BOOST_TEST_REQUIRE(::kill(cluster.node(hung).pid(), SIGCONT) == 0);
  BOOST_TEST_REQUIRE(wait_until([&] { return all_running(p); }, 30s));
  std::cout << "  all running again " << ms(steady::now() - resumed_at) << " ms after SIGCONT\n";
  BOOST_TEST((p.life(hung_stream).started > resumed_at));
  BOOST_TEST((p.life(hung_writer).started > resumed_at));
  BOOST_TEST_REQUIRE(
      cluster.node(replica).cli("CONFIG", "SET", "cluster-replica-no-failover", "no") == "OK");
  cluster.wait_for_state_ok();
  p.resume_producing(hung_shards);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(health_failover_cluster)

BOOST_AUTO_TEST_CASE(a_master_down_stops_only_its_components) {
  corvo::test::redis_cluster_options co;
  co.extra_config = {"cluster-require-full-coverage no"};
  corvo::test::redis_cluster cluster(co);
  auto l = make_layout(cluster);
  // The victim owns shard 0 (and maybe others); the other masters own the rest.
  const auto victim = l.shard_owner.at(0);
  std::set<unsigned> victim_shards, healthy_shards;
  for (const auto& [s, owner] : l.shard_owner)
    (owner == victim ? victim_shards : healthy_shards).insert(s);
  BOOST_TEST_REQUIRE(!healthy_shards.empty());
  const auto victim_writer = "writer " + l.writers.at(victim);
  const auto victim_stream = l.streams.at(victim);

  cluster_failover_process p(l.options);
  BOOST_TEST_REQUIRE(wait_until([&] { return all_running(p); }, 30s));
  BOOST_TEST_REQUIRE(wait_until([&] { return consuming(p, l.options.stream_keys, 100, 3); }, 30s));

  // No new task goes to the victim's shards from here, and its replica has every task
  // scheduled there: they must all run after the failover.
  p.pause_producing(victim_shards);
  BOOST_TEST_REQUIRE(replica_caught_up(cluster, victim));
  // The victim's stream consumer holds one entry until its stop begins: that entry's XACK
  // then goes to the dead master.
  p.hold_next_entry(victim_stream);
  BOOST_TEST_REQUIRE(wait_until([&] { return !p.stream(victim_stream).held.empty(); }, 10s));
  const auto killed_at = steady::now();
  cluster.kill_node(victim);
  BOOST_TEST_REQUIRE(wait_until([&] { return !p.life("stream " + victim_stream).running; }, 10s));
  BOOST_TEST_REQUIRE(wait_until([&] { return !p.life(victim_writer).running; }, 10s));
  const auto stopped =
      std::max(p.life(victim_writer).stopped, p.life("stream " + victim_stream).stopped);
  std::cout << "master " << victim << " killed: its writer and stream consumer stopped after "
            << ms(stopped - killed_at) << " ms\n";
  BOOST_TEST(ms(stopped - killed_at) <= 2 * (100 + 500 + 1000));  // 2 × (interval + timeout + stop)
  // The stops themselves: the dead master cannot take the victim consumer's last acks, and
  // a stopping consumer gives them up at once instead of retrying them until its drain
  // deadline (drain_timeout 10 s); the entries stay pending and are re-read after the
  // promotion.
  for (const auto& c : {victim_writer, "stream " + victim_stream}) {
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
          for (const auto& [began, took] : p.life(c).stop_log)
            if (began > killed_at)
              return true;
          return false;
        },
        10s));
    for (const auto& [began, took] : p.life(c).stop_log) {
      if (began > killed_at) {
        std::cout << "  " << c << " took " << took.count() << " ms to stop\n";
        BOOST_TEST(took.count() < 300, c);
      }
    }
  }

  cluster.wait_for_failover(victim);
  BOOST_TEST_REQUIRE(wait_until([&] { return all_running(p); }, 30s));
  std::cout << "  restarted " << ms(p.life("stream " + victim_stream).started - killed_at)
            << " ms after the kill (node timeout 1 s, then the replica's promotion)\n";
  for (const auto& c : p.components()) {
    const auto life = p.life(c);
    if (c == victim_writer || c == "stream " + victim_stream) {
      // Stopped, and running again since the promotion. (Usually exactly one stop; a probe
      // answer sent just before the kill can land after the component's own failure report
      // and restart it once more during the outage: a known flap of the monitor.)
      std::cout << "  " << c << ": " << life.starts << " starts, " << life.stops << " stops\n";
      BOOST_TEST(life.stops >= 1u, c);
      BOOST_TEST((life.started > stopped), c << " restarted");
      BOOST_TEST(life.running, c);
    } else {
      BOOST_TEST(life.starts == 1u, c << " kept running");
      BOOST_TEST(life.stops == 0u, c << " kept running");
    }
  }

  // The scheduler's shards: while a victim shard's dependency was down it made no claim;
  // the healthy shards claimed and ran tasks throughout.
  const auto t = p.scheduler();
  for (const auto s : victim_shards) {
    const auto h = p.slot_history("{gate:" + std::to_string(s) + "}");
    BOOST_TEST_REQUIRE(!h.down.empty(), "shard " << s << " went down");
    BOOST_TEST_REQUIRE(!h.up.empty());
    const auto down = h.down.front(), up = h.up.back();
    BOOST_TEST_REQUIRE((up > down));
    const auto claims = t.claims.contains(s) ? count_between(t.claims.at(s), down, up) : 0;
    std::cout << "  victim shard " << s << ": paused " << ms(down - killed_at)
              << " ms after the kill for " << ms(up - down) << " ms, " << claims
              << " claims meanwhile\n";
    BOOST_TEST(claims == 0u, "shard " << s << " claimed while its master was down");
    for (const auto h : healthy_shards) {
      const auto healthy_claims =
          t.claims.contains(h) ? count_between(t.claims.at(h), down, up) : 0;
      const auto ran = t.started.contains(h) ? count_between(t.started.at(h), down, up) : 0;
      BOOST_TEST(healthy_claims > 0u, "shard " << h << " claimed during the outage");
      BOOST_TEST(ran > 0u, "shard " << h << " ran tasks during the outage");
    }
  }

  // The victim's stream and shards take writes again (the promoted master has no replica).
  p.set_replicas(victim_stream, 0);
  p.resume_producing(victim_shards);
  const auto before = p.stream(victim_stream).durable.size();
  const auto tasks_before = p.scheduler().produced.size();
  BOOST_TEST_REQUIRE(wait_until(
      [&] {
        return p.stream(victim_stream).durable.size() >= before + 50 &&
               p.scheduler().produced.size() >= tasks_before + 30;
      },
      30s));
  std::set<std::string> streams_once;
  for (const auto& key : l.options.stream_keys)
    if (key != victim_stream)
      streams_once.insert(key);
  check_nothing_lost(cluster, p, l.options.stream_keys, streams_once, healthy_shards);
}

BOOST_AUTO_TEST_CASE(cluster_state_fail_stops_all_and_recovery_restarts_all) {
  corvo::test::redis_cluster_options co;
  co.extra_config = {"cluster-require-full-coverage no", "appendfsync always"};
  co.append_only = true;  // the restarted masters keep every acknowledged write
  corvo::test::redis_cluster cluster(co);
  auto l = make_layout(cluster);
  cluster_failover_process p(l.options);
  BOOST_TEST_REQUIRE(wait_until([&] { return all_running(p); }, 30s));
  BOOST_TEST_REQUIRE(wait_until([&] { return consuming(p, l.options.stream_keys, 100, 3); }, 30s));

  hang_one_master(cluster, p, l, l.masters[2]);

  // The survivor's stream consumer holds one entry until its stop begins: that entry's XACK
  // then goes to the survivor while it answers CLUSTERDOWN.
  const auto survivor_stream = l.streams.at(l.masters[2]);
  p.hold_next_entry(survivor_stream);
  BOOST_TEST_REQUIRE(wait_until([&] { return !p.stream(survivor_stream).held.empty(); }, 10s));
  const auto held = p.stream(survivor_stream).held;

  // Two of three masters down: no quorum, no failover; the survivor says cluster_state:fail.
  const auto killed_at = steady::now();
  cluster.kill_node(l.masters[0]);
  cluster.kill_node(l.masters[1]);
  BOOST_TEST_REQUIRE(wait_until([&] { return none_running(p); }, 30s));
  std::cout << "two masters killed: the components on the surviving master stopped after "
            << ms(p.life("writer " + l.writers.at(l.masters[2])).stopped - killed_at)
            << " ms, the scheduler after " << ms(p.life("scheduler").stopped - killed_at)
            << " ms (cluster: " << p.cluster_detail() << ")\n";
  BOOST_TEST((p.cluster_state() == health::status::down));
  BOOST_TEST(p.cluster_detail().find("cluster_state:fail") != std::string::npos);
  // A stopping consumer does not retry an XACK answered CLUSTERDOWN until its drain
  // deadline (drain_timeout 10 s): the survivor's acknowledgement is given up at once (the
  // entry stays pending and runs again after the recovery).
  const auto stopped_since_kill = [&](const std::string& key) {
    for (const auto& [began, took] : p.life("stream " + key).stop_log)
      if (began > killed_at)
        return true;
    return false;
  };
  BOOST_TEST_REQUIRE(wait_until(
      [&] {
        for (const auto& key : l.options.stream_keys)
          if (!stopped_since_kill(key))
            return false;
        return true;
      },
      30s));
  for (const auto& key : l.options.stream_keys) {
    for (const auto& [began, took] : p.life("stream " + key).stop_log) {
      if (began > killed_at) {
        std::cout << "  stream " << key << " took " << took.count() << " ms to stop\n";
        BOOST_TEST(took.count() < 300, key);
      }
    }
  }

  const auto restarted_at = steady::now();
  cluster.restart_node(l.masters[0]);
  cluster.restart_node(l.masters[1]);
  cluster.wait_for_state_ok();
  const auto ok_at = steady::now();
  BOOST_TEST_REQUIRE(wait_until([&] { return all_running(p); }, 30s));
  std::cout << "  all running again " << ms(steady::now() - ok_at)
            << " ms after the fixture saw cluster_state:ok\n";
  // Each was stopped by the outage and started again after the nodes came back. (Exact
  // counts are not asserted: see the flap noted in the first case.)
  for (const auto& c : p.components()) {
    const auto life = p.life(c);
    std::cout << "  " << c << ": " << life.starts << " starts, " << life.stops << " stops\n";
    BOOST_TEST(life.stops >= 1u, c);
    BOOST_TEST((life.started > restarted_at), c << " restarted after the recovery");
  }
  // Production goes on after the recovery, and is consumed.
  std::map<std::string, std::size_t> before;
  for (const auto& key : l.options.stream_keys)
    before[key] = p.stream(key).durable.size();
  const auto tasks_before = p.scheduler().produced.size();
  BOOST_TEST_REQUIRE(wait_until(
      [&] {
        for (const auto& key : l.options.stream_keys)
          if (p.stream(key).durable.size() < before[key] + 50)
            return false;
        return p.scheduler().produced.size() >= tasks_before + 30;
      },
      30s));
  check_nothing_lost(cluster, p, l.options.stream_keys, {}, {});
  // The held entry's acknowledgement was given up: it ran again after the recovery. Each
  // start of its consumer re-reads it until one ack succeeds, so it ran at most once per
  // life of that consumer (a flap under load restarts it once more: 3 runs, 3 starts).
  const auto held_runs = p.stream(survivor_stream).runs.at(held);
  BOOST_TEST(held_runs >= 2);
  BOOST_TEST(static_cast<std::uint64_t>(held_runs) <= p.life("stream " + survivor_stream).starts);
}

BOOST_AUTO_TEST_SUITE_END()
