#include "support/redis_cluster.hpp"

#include <algorithm>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace corvo::test {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto poll_interval = 100ms;
constexpr std::size_t no_node = std::numeric_limits<std::size_t>::max();

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = std::min(text.find(separator, start), text.size());
    if (end > start) {
      parts.emplace_back(text.substr(start, end - start));
    }
    start = end + 1;
  }
  return parts;
}

// The value of `field` in an INFO-style `field:value` reply; empty if absent.
std::string info_field(std::string_view info, std::string_view field) {
  std::size_t start = 0;
  while (start < info.size()) {
    auto end = info.find('\n', start);
    if (end == std::string_view::npos) {
      end = info.size();
    }
    auto line = info.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.size() > field.size() && line.substr(0, field.size()) == field &&
        line[field.size()] == ':') {
      return std::string{line.substr(field.size() + 1)};
    }
    start = end + 1;
  }
  return {};
}

// The port of a CLUSTER NODES address field, `ip:port@cport[,hostname]`; 0 if it has none.
std::uint16_t port_of_address(std::string_view address) {
  const auto colon = address.rfind(':', address.find('@'));
  const auto at = address.find('@');
  if (colon == std::string_view::npos || at == std::string_view::npos || at <= colon + 1) {
    return 0;
  }
  int port = 0;
  for (char c : address.substr(colon + 1, at - colon - 1)) {
    if (c < '0' || c > '9') {
      return 0;
    }
    port = port * 10 + (c - '0');
  }
  return port <= 65535 ? static_cast<std::uint16_t>(port) : 0;
}

std::string describe_slots(const std::vector<std::pair<int, int>>& slots) {
  std::string text;
  for (const auto& [first, last] : slots) {
    text += std::to_string(first) + "-" + std::to_string(last) + " ";
  }
  return text;
}

}  // namespace

redis_cluster::redis_cluster(redis_cluster_options options) : options_(std::move(options)) {
  const std::size_t total = options_.masters * (1 + options_.replicas_per_master);
  if (options_.masters < 3) {
    throw std::invalid_argument("redis_cluster: redis-cli needs at least 3 masters");
  }
  // Start every node first and wait for them afterwards: start-up overlaps.
  for (std::size_t i = 0; i < total; ++i) {
    redis_server_options node_options;
    node_options.tag = "redis-node" + std::to_string(i);
    node_options.cluster_enabled = true;
    node_options.cluster_node_timeout_ms = options_.node_timeout_ms;
    node_options.append_only = options_.append_only;
    node_options.wait_until_ready = false;
    node_options.extra_config = {
        // Replicas sync at once instead of after the default 5 s diskless-sync delay.
        "repl-diskless-sync-delay 0",
        // A replica may always be promoted, however long its link to the master was down.
        "cluster-replica-validity-factor 0",
    };
    node_options.extra_config.insert(node_options.extra_config.end(), options_.extra_config.begin(),
                                     options_.extra_config.end());
    servers_.push_back(std::make_unique<redis_server>(std::move(node_options)));
  }
  for (auto& server : servers_) {
    server->wait_ready();
  }

  std::vector<std::string> create = {"redis-cli", "--cluster", "create"};
  for (const auto& server : servers_) {
    create.push_back(server->address());
  }
  create.insert(create.end(), {"--cluster-replicas", std::to_string(options_.replicas_per_master),
                               "--cluster-yes"});
  const auto created = run_command(create, 120s);
  if (created.timed_out || created.exit_code != 0) {
    throw std::runtime_error("redis_cluster: `redis-cli --cluster create` failed (exit code " +
                             std::to_string(created.exit_code) + "):\n" + created.out +
                             created.err);
  }

  const auto deadline = clock_type::now() + 60s;
  std::string problem;
  while (!(problem = state_problem(true)).empty() && clock_type::now() < deadline) {
    std::this_thread::sleep_for(poll_interval);
  }
  // Replicas in sync, so that a failover has a replica with the data to promote.
  auto unsynced = [this] {
    for (std::size_t i = 0; i < size(); ++i) {
      const auto replication = node(i).cli("INFO", "replication");
      if (info_field(replication, "role") == "slave" &&
          info_field(replication, "master_link_status") != "up") {
        return "node " + std::to_string(i) + " has no replication link to its master yet";
      }
    }
    return std::string{};
  };
  while (problem.empty() && !(problem = unsynced()).empty() && clock_type::now() < deadline) {
    std::this_thread::sleep_for(poll_interval);
  }
  if (!problem.empty()) {
    throw std::runtime_error("redis_cluster: not ready after creation: " + problem);
  }
  for (auto& server : servers_) {
    ids_.push_back(server->cli("CLUSTER", "MYID"));
  }
}

redis_cluster::~redis_cluster() = default;

std::vector<std::string> redis_cluster::seed_urls() const {
  std::vector<std::string> urls;
  for (const auto& server : servers_) {
    urls.push_back(server->url());
  }
  return urls;
}

std::size_t redis_cluster::index_of_port(std::uint16_t port) const {
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    if (servers_[i]->port() == port) {
      return i;
    }
  }
  return no_node;
}

std::size_t redis_cluster::any_running_node() {
  for (std::size_t i = 0; i < size(); ++i) {
    if (node(i).running()) {
      return i;
    }
  }
  throw std::runtime_error("redis_cluster: no node is running");
}

std::vector<redis_cluster_node> redis_cluster::view_of(std::size_t observer) {
  std::vector<redis_cluster_node> view;
  std::istringstream lines{node(observer).cli("CLUSTER", "NODES")};
  for (std::string line; std::getline(lines, line);) {
    const auto fields = split(line, ' ');
    if (fields.size() < 8) {
      continue;
    }
    redis_cluster_node entry;
    entry.index = index_of_port(port_of_address(fields[1]));
    if (entry.index == no_node) {
      continue;  // handshake or an address this fixture does not know
    }
    entry.id = fields[0];
    entry.port = node(entry.index).port();
    const auto flags = split(fields[2], ',');
    auto has_flag = [&](std::string_view flag) {
      return std::find(flags.begin(), flags.end(), flag) != flags.end();
    };
    entry.role = has_flag("master")  ? redis_role::master
                 : has_flag("slave") ? redis_role::replica
                                     : redis_role::unknown;
    entry.failed = has_flag("fail") || has_flag("fail?");
    entry.master_id = fields[3] == "-" ? std::string{} : fields[3];
    entry.running = node(entry.index).running();
    for (std::size_t f = 8; f < fields.size(); ++f) {
      const auto& range = fields[f];
      if (range.empty() || range.front() == '[') {
        continue;  // a slot being imported or migrated
      }
      const auto dash = range.find('-');
      const int first = std::stoi(range.substr(0, dash));
      const int last = dash == std::string::npos ? first : std::stoi(range.substr(dash + 1));
      entry.slots.emplace_back(first, last);
    }
    view.push_back(std::move(entry));
  }
  std::sort(view.begin(), view.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });
  return view;
}

std::vector<redis_cluster_node> redis_cluster::nodes() {
  auto view = view_of(any_running_node());
  // A node the observer does not list (yet) still belongs to the fixture.
  for (std::size_t i = 0; i < size(); ++i) {
    const bool listed =
        std::any_of(view.begin(), view.end(), [i](const auto& entry) { return entry.index == i; });
    if (!listed) {
      redis_cluster_node entry;
      entry.index = i;
      entry.id = i < ids_.size() ? ids_[i] : std::string{};
      entry.port = node(i).port();
      entry.running = node(i).running();
      view.push_back(std::move(entry));
    }
  }
  std::sort(view.begin(), view.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });
  return view;
}

std::vector<std::size_t> redis_cluster::masters() {
  std::vector<std::size_t> indices;
  for (const auto& entry : nodes()) {
    if (entry.role == redis_role::master && entry.running && !entry.failed) {
      indices.push_back(entry.index);
    }
  }
  return indices;
}

std::vector<std::size_t> redis_cluster::replicas() {
  std::vector<std::size_t> indices;
  for (const auto& entry : nodes()) {
    if (entry.role == redis_role::replica && entry.running && !entry.failed) {
      indices.push_back(entry.index);
    }
  }
  return indices;
}

int redis_cluster::key_slot(std::string_view key) {
  return std::stoi(node(any_running_node()).cli("CLUSTER", "KEYSLOT", std::string{key}));
}

std::size_t redis_cluster::node_for_slot(int slot) {
  for (const auto& entry : view_of(any_running_node())) {
    if (entry.role != redis_role::master || entry.failed) {
      continue;
    }
    for (const auto& [first, last] : entry.slots) {
      if (first <= slot && slot <= last) {
        return entry.index;
      }
    }
  }
  throw std::runtime_error("redis_cluster: no live master serves slot " + std::to_string(slot));
}

void redis_cluster::kill_node(std::size_t index) {
  // Its own view is the freshest account of who replicates it.
  std::vector<std::size_t> replicas;
  if (node(index).running()) {
    for (const auto& entry : view_of(index)) {
      if (entry.master_id == ids_.at(index)) {
        replicas.push_back(entry.index);
      }
    }
  }
  if (replicas.empty()) {
    replicas_of_killed_.erase(index);  // wait_for_failover asks the surviving nodes instead
  } else {
    replicas_of_killed_[index] = std::move(replicas);
  }
  node(index).kill();
}

void redis_cluster::restart_node(std::size_t index) {
  replicas_of_killed_.erase(index);
  node(index).restart();
}

std::uint16_t redis_cluster::wait_for_failover(std::size_t killed_master_index,
                                               std::chrono::milliseconds timeout) {
  const auto deadline = clock_type::now() + timeout;
  std::vector<std::size_t> candidates;
  if (auto known = replicas_of_killed_.find(killed_master_index);
      known != replicas_of_killed_.end()) {
    candidates = known->second;
  } else {  // killed without kill_node(): its replicas still name it as their master
    for (const auto& entry : view_of(any_running_node())) {
      if (entry.master_id == node_id(killed_master_index)) {
        candidates.push_back(entry.index);
      }
    }
  }
  if (candidates.empty()) {
    throw std::runtime_error("redis_cluster: node " + std::to_string(killed_master_index) +
                             " has no replica to promote");
  }
  while (true) {
    for (auto candidate : candidates) {
      if (!node(candidate).running()) {
        continue;
      }
      const auto role = node(candidate).cli("ROLE");
      if (role.rfind("master", 0) == 0) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
        wait_for_state_ok(std::max(left, std::chrono::milliseconds{1}));
        return node(candidate).port();
      }
    }
    if (clock_type::now() >= deadline) {
      throw std::runtime_error("redis_cluster: no replica of node " +
                               std::to_string(killed_master_index) + " was promoted in time");
    }
    std::this_thread::sleep_for(poll_interval);
  }
}

void redis_cluster::wait_for_state_ok(std::chrono::milliseconds timeout) {
  const auto deadline = clock_type::now() + timeout;
  while (true) {
    const auto problem = state_problem(false);
    if (problem.empty()) {
      return;
    }
    if (clock_type::now() >= deadline) {
      throw std::runtime_error("redis_cluster: state not ok in time: " + problem);
    }
    std::this_thread::sleep_for(poll_interval);
  }
}

std::string redis_cluster::state_problem(bool require_all_known) {
  std::string first_layout;
  for (std::size_t i = 0; i < size(); ++i) {
    if (!node(i).running()) {
      continue;
    }
    const auto info = node(i).cli("CLUSTER", "INFO");
    const std::string who =
        "node " + std::to_string(i) + " (port " + std::to_string(node(i).port()) + ")";
    if (info_field(info, "cluster_state") != "ok") {
      return who + " reports cluster_state:" + info_field(info, "cluster_state");
    }
    if (info_field(info, "cluster_slots_ok") != std::to_string(slot_count)) {
      return who + " reports cluster_slots_ok:" + info_field(info, "cluster_slots_ok");
    }
    if (require_all_known && info_field(info, "cluster_known_nodes") != std::to_string(size())) {
      return who + " knows " + info_field(info, "cluster_known_nodes") + " of " +
             std::to_string(size()) + " nodes";
    }
    // The topology as this node sees it, restricted to running nodes: role, master and
    // slots of each. Every running node must see the same.
    std::string layout;
    for (const auto& entry : view_of(i)) {
      if (!entry.running) {
        continue;
      }
      if (entry.failed) {
        return who + " still sees running node " + std::to_string(entry.index) + " as failed";
      }
      layout += std::to_string(entry.index) +
                (entry.role == redis_role::master    ? " master "
                 : entry.role == redis_role::replica ? " replica of " + entry.master_id + " "
                                                     : " unknown ") +
                describe_slots(entry.slots) + "; ";
    }
    if (first_layout.empty()) {
      first_layout = layout;
    } else if (layout != first_layout) {
      return who + " sees the topology as [" + layout + "], another node as [" + first_layout + "]";
    }
  }
  if (first_layout.empty()) {
    return "no node is running";
  }
  return {};
}

}  // namespace corvo::test
