#include <algorithm>
#include <corvo/redis/client.hpp>

namespace corvo::redis {

client_config client_config::from_url(std::string_view url) {
  client_config cfg;
  cfg.server = config::from_url(url);
  return cfg;
}

client_config client_config::from_cluster_seeds(const std::vector<std::string>& seeds) {
  if (seeds.empty()) {
    throw std::invalid_argument("redis cluster: no seed node given");
  }
  client_config cfg;
  cluster_options opts;
  opts.seeds = seeds;
  if (seeds.front().find("://") != std::string::npos) {
    opts.node = config::from_url(seeds.front());
  }
  cfg.server = opts.node;
  cfg.cluster = std::move(opts);
  return cfg;
}

namespace {

// The connection settings every connection (standalone or cluster node) takes from the
// section.
void apply_connection_keys(const corvo::config& redis, config& cfg) {
  cfg.request_timeout = redis.get_or("request_timeout", cfg.request_timeout);
  cfg.max_queued_requests =
      redis.get_or<std::size_t>("max_queued_requests", cfg.max_queued_requests);
}

}  // namespace

client_config client_config::from(const corvo::config& app, std::string_view section) {
  client_config cfg = from_section(app, section);
  const corvo::config redis = app.section(section);
  apply_connection_keys(redis, cfg.server);
  if (cfg.cluster) {
    apply_connection_keys(redis, cfg.cluster->node);
  }
  return cfg;
}

client_config client_config::from_section(const corvo::config& app, std::string_view section) {
  const corvo::config redis = app.section(section);
  // Every key is asked for in both modes, so that reject_unknown_keys knows them all.
  const bool has_url = redis.contains("url");
  std::vector<std::string> seeds = redis.get_or<std::vector<std::string>>("cluster.seeds", {});
  const bool enabled = redis.get_or<bool>("cluster.enabled", !seeds.empty());
  cluster_options defaults;
  const auto max_redirections =
      redis.get_or<unsigned>("cluster.max_redirections", defaults.max_redirections);
  const auto retry_deadline = redis.get_or("cluster.retry_deadline", defaults.retry_deadline);
  const auto refresh_interval = redis.get_or("cluster.refresh_interval", defaults.refresh_interval);
  const auto min_refresh_interval =
      redis.get_or("cluster.min_refresh_interval", defaults.min_refresh_interval);
  const auto use_cluster_shards =
      redis.get_or<bool>("cluster.use_cluster_shards", defaults.use_cluster_shards);
  // The connection keys are read by from() after this returns; ask for them here too, so
  // the check below knows them.
  config connection_keys;
  apply_connection_keys(redis, connection_keys);
  app.reject_unknown_keys(section);

  if (seeds.empty()) {
    if (!has_url) {
      // The error names the key a user most likely forgot.
      (void)redis.get<std::string>(enabled ? "cluster.seeds" : "url");
    }
    const auto url = redis.get<std::string>("url");
    if (!enabled) {
      return from_url(url);
    }
    seeds.push_back(url);
  }
  client_config cfg = from_cluster_seeds(seeds);
  auto& opts = *cfg.cluster;
  opts.max_redirections = max_redirections;
  opts.retry_deadline = retry_deadline;
  opts.refresh_interval = refresh_interval;
  opts.min_refresh_interval = min_refresh_interval;
  opts.use_cluster_shards = use_cluster_shards;
  return cfg;
}

client::client(executor_type executor, client_config cfg)
    : config_(std::move(cfg)), family_(std::make_shared<std::vector<client*>>()) {
  if (config_.cluster) {
    cluster_ = std::make_unique<cluster_client>(std::move(executor), *config_.cluster);
  } else {
    standalone_ = std::make_unique<connection>(std::move(executor), config_.server);
  }
  family_->push_back(this);
}

client::client(executor_type executor, client_config cfg, std::unique_ptr<cluster_client> cluster,
               std::shared_ptr<std::vector<client*>> family)
    : config_(std::move(cfg)), cluster_(std::move(cluster)), family_(std::move(family)) {
  if (!cluster_) {
    standalone_ = std::make_unique<connection>(std::move(executor), config_.server);
  }
  family_->push_back(this);
}

client::~client() {
  std::erase(*family_, this);
}

client::executor_type client::get_executor() const noexcept {
  return cluster_ ? cluster_->get_executor() : standalone_->get_executor();
}

asio::awaitable<void> client::run() {
  if (cluster_) {
    co_await cluster_->run();
  } else {
    co_await standalone_->run();
  }
}

void client::cancel() {
  if (cluster_) {
    cluster_->cancel();
  } else {
    standalone_->cancel();
  }
}

asio::awaitable<std::size_t> client::exec(const request& req, any_adapter resp) {
  if (cluster_) {
    co_return co_await cluster_->exec(req, resp);
  }
  co_return co_await standalone_->exec(req, resp);
}

asio::awaitable<std::size_t> client::exec(const request& req, any_adapter resp, route_hint hint) {
  if (cluster_) {
    co_return co_await cluster_->exec(req, resp, hint);
  }
  co_return co_await standalone_->exec(req, resp);
}

void client::set_push_sink(connection::push_sink sink) {
  if (cluster_) {
    cluster_->set_push_sink(std::move(sink));
  } else {
    standalone_->set_push_sink(std::move(sink));
  }
}

asio::awaitable<generic_response> client::receive() {
  if (cluster_) {
    co_return co_await cluster_->receive();
  }
  co_return co_await standalone_->receive();
}

std::unique_ptr<client> client::dedicated() const {
  client_config cfg = config_;
  if (cluster_) {
    cfg.cluster = cluster_->get_options();
    cfg.cluster->node.role = connection_role::dedicated;
    cfg.cluster->connect_lazily = true;
    return std::unique_ptr<client>(
        new client(get_executor(), std::move(cfg), cluster_->dedicated(), family_));
  }
  cfg.server.role = connection_role::dedicated;
  return std::unique_ptr<client>(new client(get_executor(), std::move(cfg), nullptr, family_));
}

void client::reset_connections(std::string_view reason) {
  // A copy: nothing here destroys a client, but the list must not change under the loop.
  const auto members = *family_;
  for (client* c : members) {
    c->reset_own_connections(reason);
  }
}

void client::reset_connections_to(std::string_view address, std::string_view reason) {
  const auto members = *family_;
  for (client* c : members) {
    c->reset_own_connections_to(address, reason);
  }
}

void client::reset_own_connections_to(std::string_view address, std::string_view reason) {
  if (cluster_) {
    cluster_->reset_connection_to(address, reason);
  } else if (config_.server.address() == address) {
    standalone_->reset(reason);
  }
}

void client::reset_own_connections(std::string_view reason) {
  if (cluster_) {
    cluster_->reset_connections(reason);
  } else {
    standalone_->reset(reason);
  }
}

}  // namespace corvo::redis
