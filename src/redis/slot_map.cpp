#include <algorithm>
#include <charconv>
#include <corvo/redis/cluster/slot.hpp>
#include <corvo/redis/cluster/slot_map.hpp>
#include <corvo/redis/error.hpp>
#include <set>

namespace corvo::redis {
namespace {

using resp3::type;

// Read-only walk over the nodes of one reply (pre-order, with depths).
class tree {
 public:
  explicit tree(const generic_response& nodes) : nodes_(nodes) {}

  // The first value at depth 0 (attributes in front skipped), or npos.
  std::size_t root() const {
    for (std::size_t i = 0; i < nodes_.size(); i = end_of(i)) {
      if (nodes_[i].depth == 0 && nodes_[i].data_type != type::attribute) {
        return i;
      }
    }
    return npos;
  }

  // One past the last node of the subtree rooted at `i`.
  std::size_t end_of(std::size_t i) const {
    std::size_t j = i + 1;
    while (j < nodes_.size() && nodes_[j].depth > nodes_[i].depth) {
      ++j;
    }
    return j;
  }

  // Direct children of aggregate `i`, attributes left out.
  std::vector<std::size_t> children(std::size_t i) const {
    std::vector<std::size_t> out;
    if (!resp3::is_aggregate(nodes_[i].data_type)) {
      return out;
    }
    const std::size_t end = end_of(i);
    for (std::size_t j = i + 1; j < end; j = end_of(j)) {
      if (nodes_[j].depth == nodes_[i].depth + 1 && nodes_[j].data_type != type::attribute) {
        out.push_back(j);
      }
    }
    return out;
  }

  const resp3::node& operator[](std::size_t i) const { return nodes_[i]; }

  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

 private:
  const generic_response& nodes_;
};

bool is_text(const resp3::node& n) {
  return n.data_type == type::bulk_string || n.data_type == type::simple_string ||
         n.data_type == type::verbatim_string;
}

bool is_number(const resp3::node& n) {
  return n.data_type == type::integer || is_text(n);
}

template <class Int>
bool to_int(std::string_view text, Int& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

bool valid_range(long long first, long long last) {
  return first >= 0 && last >= first && last < slot_count;
}

std::string host_or(std::string_view host, std::string_view fallback) {
  if (host.empty() || host == "?") {
    return std::string(fallback);
  }
  return std::string(host);
}

// A CLUSTER SLOTS node entry: [host, port, id, (metadata)].
bool read_slots_node(const tree& t, std::size_t i, std::string_view replying_host,
                     cluster_node& out) {
  const auto fields = t.children(i);
  if (fields.size() < 2 || !is_text(t[fields[0]]) || !is_number(t[fields[1]])) {
    return false;
  }
  long long port = 0;
  if (!to_int(t[fields[1]].value, port) || port < 0 || port > 65535) {
    return false;
  }
  out.host = host_or(t[fields[0]].value, replying_host);
  out.port = std::to_string(port);
  out.id = fields.size() >= 3 && is_text(t[fields[2]]) ? t[fields[2]].value : std::string();
  return true;
}

// Key/value pairs of a map, or of a flat array (RESP2 style).
std::vector<std::pair<std::size_t, std::size_t>> pairs_of(const tree& t, std::size_t i) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  const auto kids = t.children(i);
  for (std::size_t k = 0; k + 1 < kids.size(); k += 2) {
    out.emplace_back(kids[k], kids[k + 1]);
  }
  return out;
}

}  // namespace

slot_map::slot_map() : owner_(slot_count, no_shard) {}

std::uint16_t slot_map::shard_index(const cluster_node& master) {
  const std::string address = master.address();
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    if (shards_[i].master.address() == address) {
      if (shards_[i].master.id.empty()) {
        shards_[i].master.id = master.id;
      }
      return static_cast<std::uint16_t>(i);
    }
  }
  shards_.push_back(cluster_shard{master, {}, {}});
  return static_cast<std::uint16_t>(shards_.size() - 1);
}

slot_map slot_map::from_cluster_slots(const generic_response& reply, std::string_view replying_host,
                                      boost::system::error_code& ec) {
  slot_map map;
  const tree t(reply);
  const std::size_t root = t.root();
  if (root == tree::npos || !resp3::is_aggregate(t[root].data_type)) {
    ec = error::type_mismatch;
    return {};
  }
  for (std::size_t entry : t.children(root)) {
    const auto fields = t.children(entry);
    long long first = 0, last = 0;
    if (fields.size() < 3 || !is_number(t[fields[0]]) || !is_number(t[fields[1]]) ||
        !to_int(t[fields[0]].value, first) || !to_int(t[fields[1]].value, last) ||
        !valid_range(first, last)) {
      ec = error::type_mismatch;
      return {};
    }
    cluster_node master;
    if (!read_slots_node(t, fields[2], replying_host, master)) {
      ec = error::type_mismatch;
      return {};
    }
    const std::uint16_t index = map.shard_index(master);
    auto& shard = map.shards_[index];
    shard.ranges.emplace_back(static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last));
    for (std::size_t f = 3; f < fields.size(); ++f) {
      cluster_node replica;
      if (!read_slots_node(t, fields[f], replying_host, replica)) {
        ec = error::type_mismatch;
        return {};
      }
      if (std::find(shard.replicas.begin(), shard.replicas.end(), replica) ==
          shard.replicas.end()) {
        shard.replicas.push_back(std::move(replica));
      }
    }
    std::fill(map.owner_.begin() + first, map.owner_.begin() + last + 1, index);
  }
  return map;
}

slot_map slot_map::from_cluster_shards(const generic_response& reply,
                                       std::string_view replying_host,
                                       boost::system::error_code& ec) {
  slot_map map;
  const tree t(reply);
  const std::size_t root = t.root();
  if (root == tree::npos || !resp3::is_aggregate(t[root].data_type)) {
    ec = error::type_mismatch;
    return {};
  }
  for (std::size_t shard_node : t.children(root)) {
    std::vector<std::pair<std::uint16_t, std::uint16_t>> ranges;
    std::optional<cluster_node> master;
    std::vector<cluster_node> replicas;
    for (auto [key, value] : pairs_of(t, shard_node)) {
      if (t[key].value == "slots") {
        const auto bounds = t.children(value);
        if (bounds.size() % 2 != 0) {
          ec = error::type_mismatch;
          return {};
        }
        for (std::size_t b = 0; b < bounds.size(); b += 2) {
          long long first = 0, last = 0;
          if (!to_int(t[bounds[b]].value, first) || !to_int(t[bounds[b + 1]].value, last) ||
              !valid_range(first, last)) {
            ec = error::type_mismatch;
            return {};
          }
          ranges.emplace_back(static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last));
        }
      } else if (t[key].value == "nodes") {
        for (std::size_t n : t.children(value)) {
          std::string ip, endpoint, port, tls_port, id, role, health;
          for (auto [k, v] : pairs_of(t, n)) {
            const std::string& name = t[k].value;
            const std::string& text = t[v].value;
            if (name == "ip") {
              ip = text;
            } else if (name == "endpoint") {
              endpoint = text;
            } else if (name == "port") {
              port = text;
            } else if (name == "tls-port") {
              tls_port = text;
            } else if (name == "id") {
              id = text;
            } else if (name == "role") {
              role = text;
            } else if (name == "health") {
              health = text;
            }
          }
          const std::string& chosen_port = !port.empty() && port != "0" ? port : tls_port;
          unsigned port_number = 0;
          if (chosen_port.empty() || !to_int(chosen_port, port_number) || port_number > 65535) {
            ec = error::type_mismatch;
            return {};
          }
          const std::string host =
              host_or(!endpoint.empty() && endpoint != "?" ? endpoint : ip, replying_host);
          cluster_node node{host, std::to_string(port_number), id};
          if (role == "master") {
            master = std::move(node);
          } else if (health.empty() || health == "online") {
            replicas.push_back(std::move(node));
          }
        }
      }
    }
    if (ranges.empty()) {
      continue;  // a shard without slots (an empty master) serves nothing
    }
    if (!master) {
      ec = error::type_mismatch;
      return {};
    }
    const std::uint16_t index = map.shard_index(*master);
    auto& shard = map.shards_[index];
    for (auto& replica : replicas) {
      if (std::find(shard.replicas.begin(), shard.replicas.end(), replica) ==
          shard.replicas.end()) {
        shard.replicas.push_back(std::move(replica));
      }
    }
    for (auto [first, last] : ranges) {
      shard.ranges.emplace_back(first, last);
      std::fill(map.owner_.begin() + first, map.owner_.begin() + last + 1, index);
    }
  }
  return map;
}

const cluster_node* slot_map::master_of(std::uint16_t slot) const noexcept {
  if (slot >= slot_count || owner_[slot] == no_shard) {
    return nullptr;
  }
  return &shards_[owner_[slot]].master;
}

bool slot_map::move_slot(std::uint16_t slot, const cluster_node& node) {
  if (slot >= slot_count) {
    return false;
  }
  const std::uint16_t index = shard_index(node);
  if (owner_[slot] == index) {
    return false;
  }
  owner_[slot] = index;
  shards_[index].ranges.emplace_back(slot, slot);
  return true;
}

std::size_t slot_map::covered_slots() const noexcept {
  return static_cast<std::size_t>(
      std::count_if(owner_.begin(), owner_.end(), [](std::uint16_t s) { return s != no_shard; }));
}

bool slot_map::is_master(std::string_view address) const {
  return std::any_of(shards_.begin(), shards_.end(),
                     [&](const cluster_shard& s) { return s.master.address() == address; });
}

std::vector<cluster_node> slot_map::all_nodes() const {
  std::vector<cluster_node> out;
  std::set<std::string> seen;
  for (const auto& s : shards_) {
    if (seen.insert(s.master.address()).second) {
      out.push_back(s.master);
    }
  }
  for (const auto& s : shards_) {
    for (const auto& r : s.replicas) {
      if (seen.insert(r.address()).second) {
        out.push_back(r);
      }
    }
  }
  return out;
}

bool slot_map::same_routing(const slot_map& other) const {
  for (std::size_t slot = 0; slot < slot_count; ++slot) {
    const auto* a = master_of(static_cast<std::uint16_t>(slot));
    const auto* b = other.master_of(static_cast<std::uint16_t>(slot));
    if ((a == nullptr) != (b == nullptr)) {
      return false;
    }
    if (a != nullptr && (a->host != b->host || a->port != b->port)) {
      return false;
    }
  }
  return true;
}

std::optional<redirection> parse_redirection(std::string_view text) {
  redirection r;
  if (text.starts_with("MOVED ")) {
    r.type = redirection::kind::moved;
    text.remove_prefix(6);
  } else if (text.starts_with("ASK ")) {
    r.type = redirection::kind::ask;
    text.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto space = text.find(' ');
  if (space == std::string_view::npos) {
    return std::nullopt;
  }
  unsigned slot = 0;
  if (!to_int(text.substr(0, space), slot) || slot >= slot_count) {
    return std::nullopt;
  }
  r.slot = static_cast<std::uint16_t>(slot);
  std::string_view endpoint = text.substr(space + 1);
  if (const auto end = endpoint.find(' '); end != std::string_view::npos) {
    endpoint = endpoint.substr(0, end);
  }
  const auto colon = endpoint.rfind(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  unsigned port = 0;
  if (!to_int(endpoint.substr(colon + 1), port) || port == 0 || port > 65535) {
    return std::nullopt;
  }
  r.host = std::string(endpoint.substr(0, colon));
  if (r.host == "?") {
    r.host.clear();
  }
  r.port = std::to_string(port);
  return r;
}

cluster_error_kind classify_cluster_error(std::string_view text) noexcept {
  auto word_is = [text](std::string_view word) {
    return text.starts_with(word) && (text.size() == word.size() || text[word.size()] == ' ');
  };
  if (word_is("MOVED")) {
    return cluster_error_kind::moved;
  }
  if (word_is("ASK")) {
    return cluster_error_kind::ask;
  }
  if (word_is("TRYAGAIN") || word_is("LOADING") || word_is("MASTERDOWN")) {
    return cluster_error_kind::try_again;
  }
  if (word_is("CLUSTERDOWN")) {
    return cluster_error_kind::cluster_down;
  }
  if (word_is("READONLY")) {
    return cluster_error_kind::not_master;
  }
  return cluster_error_kind::none;
}

}  // namespace corvo::redis
