#include <corvo/health/shard_gate.hpp>
#include <string>

namespace corvo::health {
namespace {

struct gate {
  std::vector<dependency> dependencies;
  bool operator()(unsigned shard) const {
    return shard >= dependencies.size() || dependencies[shard].state() != status::down;
  }
};

}  // namespace

std::vector<dependency> scheduler_shard_dependencies(redis_cluster_health& cluster,
                                                     std::string_view name_space, unsigned shards) {
  std::vector<dependency> out;
  out.reserve(shards);
  for (unsigned s = 0; s < shards; ++s) {
    const auto tag = "{" + std::string(name_space) + ":" + std::to_string(s) + "}";
    out.push_back(cluster.slot_dependency(std::string_view(tag)));
  }
  return out;
}

std::function<bool(unsigned shard)> shard_gate(std::vector<dependency> shard_dependencies) {
  return gate{std::move(shard_dependencies)};
}

}  // namespace corvo::health
