#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/health/probes.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <memory>
#include <set>
#include <stdexcept>

namespace corvo::health {
namespace {

redis::request probe_request(bool wait_for_connection = false) {
  redis::request::config cfg;
  cfg.fail_if_not_connected = !wait_for_connection;
  cfg.idempotent = true;
  return redis::request(cfg);
}

// Until the client has answered a probe once, a probe waits for the client's connection
// (bounded by the probe timeout, as every probe): the first probe of a starting process is
// not a failure because the first connect is still under way, which would keep the
// dependency down, and its components waiting, for a whole probe interval. Once answered, a
// probe fails at once when the client is not connected: a lost connection is down now, not
// after the timeout. The flag is shared by the copies of a probe (probe_fn copies it).
using answered_flag = std::shared_ptr<bool>;

struct ping_probe {
  redis::client* redis;
  answered_flag answered = std::make_shared<bool>(false);
  asio::awaitable<probe_result> operator()() const {
    auto req = probe_request(!*answered);
    req.push("PING");
    redis::response<std::string> resp;
    co_await redis->exec(req, resp);
    *answered = true;  // an answer, an error reply included: the client has connected
    const auto& reply = std::get<0>(resp);
    if (!reply.has_value()) {
      co_return probe_result{status::down, "PING: " + reply.error().message};
    }
    co_return probe_result{status::up, ""};
  }
};

struct stream_probe {
  redis::client* redis;
  std::vector<std::string> streams;
  answered_flag answered = std::make_shared<bool>(false);
  asio::awaitable<probe_result> operator()() const {
    for (const auto& stream : streams) {
      auto req = probe_request(!*answered);
      req.push("XINFO", "STREAM", stream);
      redis::response<redis::ignore_t> resp;
      co_await redis->exec(req, resp);
      *answered = true;  // an answer, an error reply included: the client has connected
      const auto& reply = std::get<0>(resp);
      if (!reply.has_value()) {
        co_return probe_result{status::down,
                               "XINFO STREAM " + stream + ": " + reply.error().message};
      }
    }
    co_return probe_result{status::up, ""};
  }
};

}  // namespace

probe_fn redis_ping_probe(redis::client& redis) {
  return ping_probe{&redis};
}

probe_fn stream_readable_probe(redis::client& redis, std::vector<std::string> streams) {
  return stream_probe{&redis, std::move(streams)};
}

void reset_when_down(const dependency& dep, redis::client& redis) {
  if (dep.owner() == nullptr) {
    throw std::invalid_argument("health::reset_when_down: a dependency of no monitor");
  }
  dep.owner()->on_transition([dep, client = &redis](const dependency& changed, status, status to,
                                                    std::string_view detail) {
    if (changed == dep && to == status::down) {
      client->reset_connections(dep.name() + " down: " + std::string(detail));
    }
  });
}

// ---- Redis Cluster ---------------------------------------------------------------------------

struct redis_cluster_health::state {
  monitor* owner = nullptr;
  redis::cluster_client* cluster = nullptr;
  std::string name;
  probe_options options;
  dependency whole;
  std::map<std::uint16_t, dependency> slots;  // passive, by slot
  std::set<std::string> unanswered;

  // One master's answer to CLUSTER INFO.
  struct answer {
    bool answered = false;
    bool state_ok = false;
    std::string detail;
  };

  static asio::awaitable<void> ask_master(redis::cluster_client* cluster, std::uint16_t slot,
                                          std::chrono::milliseconds timeout, answer* out) {
    auto req = probe_request();
    req.push("CLUSTER", "INFO");
    redis::response<std::string> resp;
    try {
      co_await with_timeout(cluster->exec(req, resp, redis::route_hint::for_slot(slot)), timeout);
    } catch (...) {
      const auto failure = std::current_exception();
      if (is_operation_aborted(failure)) {
        throw;
      }
      out->detail = describe(failure);
      co_return;
    }
    const auto& reply = std::get<0>(resp);
    if (!reply.has_value()) {
      out->detail = "CLUSTER INFO: " + reply.error().message;
      co_return;
    }
    out->answered = true;
    out->state_ok = reply->find("cluster_state:ok") != std::string::npos;
    if (!out->state_ok) {
      out->detail = "cluster_state:fail";
    }
  }

  asio::awaitable<probe_result> probe_round() {
    auto keep = owner;  // (the monitor outlives the round)
    (void)keep;
    if (!cluster->has_topology()) {
      probe_result r{status::down, "no cluster topology yet"};
      record_slots(r, {}, {});
      co_return r;
    }
    const auto map = cluster->topology();
    const auto& shards = map.shards();
    std::vector<answer> answers(shards.size());
    auto ex = co_await asio::this_coro::executor;
    {
      task_group group(ex);
      // Each master is bounded by the probe timeout; the monitor cuts the round only at
      // 1.5 times it (see the constructor), so a dead or hung master is reported as that
      // master even when the loop is slow to finish the round, not as a timed-out round
      // that takes the whole cluster down.
      const auto each = std::max(options.timeout, std::chrono::milliseconds(1));
      for (std::size_t i = 0; i < shards.size(); ++i) {
        if (shards[i].ranges.empty()) {
          answers[i].detail = "serves no slot";
          continue;
        }
        co_await group.spawn(
            ask_master(cluster, shards[i].ranges.front().first, each, &answers[i]));
      }
      co_await group.join();
    }
    std::set<std::string> silent;
    bool any_answer = false;
    bool any_fail = false;
    std::string fail_detail;
    for (std::size_t i = 0; i < shards.size(); ++i) {
      if (!answers[i].answered) {
        silent.insert(shards[i].master.address());
        if (fail_detail.empty()) {
          fail_detail = shards[i].master.address() + ": " + answers[i].detail;
        }
        continue;
      }
      any_answer = true;
      if (!answers[i].state_ok) {
        any_fail = true;
        fail_detail = shards[i].master.address() + " says cluster_state:fail";
      }
    }
    unanswered = silent;
    probe_result whole_result;
    if (any_fail) {
      whole_result = {status::down, fail_detail};
    } else if (!any_answer) {
      whole_result = {status::down, "no master answers: " + fail_detail};
    } else if (!silent.empty()) {
      whole_result = {status::degraded, fail_detail};
    } else {
      whole_result = {status::up, ""};
    }
    record_slots(whole_result, map, silent);
    co_return whole_result;
  }

  void record_slots(const probe_result& whole_result, const redis::slot_map& map,
                    const std::set<std::string>& silent) {
    for (const auto& [slot, dep] : slots) {
      probe_result r;
      if (whole_result.state == status::down) {
        r = {status::down, whole_result.detail};
      } else if (const auto* master = map.master_of(slot); master == nullptr) {
        r = {status::down, "slot " + std::to_string(slot) + " has no master"};
      } else if (silent.contains(master->address())) {
        r = {status::down, "master " + master->address() + " does not answer"};
      } else {
        r = {status::up, ""};
      }
      owner->record(dep, std::move(r));
    }
  }
};

namespace {

struct cluster_probe {
  std::weak_ptr<redis_cluster_health::state> state;
  asio::awaitable<probe_result> operator()() const {
    const auto s = state.lock();
    if (!s) {
      co_return probe_result{status::down, "cluster health object destroyed"};
    }
    co_return co_await s->probe_round();
  }
};

}  // namespace

redis_cluster_health::redis_cluster_health(monitor& m, redis::cluster_client& cluster,
                                           std::string name, probe_options options)
    : state_(std::make_shared<state>()) {
  state_->owner = &m;
  state_->cluster = &cluster;
  state_->name = name;
  state_->options = options;
  probe_options round = options;
  round.timeout = options.timeout + options.timeout / 2;
  state_->whole = m.add(std::move(name), cluster_probe{state_}, round);
}

redis_cluster_health::~redis_cluster_health() = default;

dependency redis_cluster_health::cluster() const noexcept {
  return state_->whole;
}

dependency redis_cluster_health::slot_dependency(std::string_view key) {
  return slot_dependency(redis::key_slot(key));
}

dependency redis_cluster_health::slot_dependency(std::uint16_t slot) {
  if (const auto it = state_->slots.find(slot); it != state_->slots.end()) {
    return it->second;
  }
  auto options = state_->options;
  auto dep =
      state_->owner->add_passive(state_->name + "[slot " + std::to_string(slot) + "]", options);
  state_->slots.emplace(slot, dep);
  return dep;
}

std::vector<std::string> redis_cluster_health::unanswered_masters() const {
  return {state_->unanswered.begin(), state_->unanswered.end()};
}

void redis_cluster_health::reset_when_down(redis::client& redis) {
  // The round records `unanswered` before it records the dependencies, so the transitions
  // below see the masters of this round.
  state_->owner->on_transition([weak = std::weak_ptr<state>(state_), client = &redis](
                                   const dependency& changed, status, status to,
                                   std::string_view detail) {
    const auto s = weak.lock();
    if (!s || to != status::down) {
      return;
    }
    const bool ours = changed == s->whole ||
                      std::any_of(s->slots.begin(), s->slots.end(),
                                  [&changed](const auto& slot) { return slot.second == changed; });
    if (!ours) {
      return;
    }
    for (const auto& address : s->unanswered) {
      client->reset_connections_to(address, changed.name() + " down: " + std::string(detail));
    }
  });
}

}  // namespace corvo::health
