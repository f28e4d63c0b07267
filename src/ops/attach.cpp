#include <corvo/health/app.hpp>
#include <corvo/ops/attach.hpp>
#include <corvo/ops/collectors.hpp>
#include <corvo/ops/endpoints.hpp>
#include <corvo/ops/server.hpp>

namespace corvo::ops {

struct endpoint::impl {
  explicit impl(const server_options& options) : routes(policy_for(options)) {}

  registry metrics;
  ops::dashboard board;
  router routes;
  std::unique_ptr<server> http;
};

endpoint::endpoint(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
endpoint::~endpoint() = default;

registry& endpoint::metrics() noexcept {
  return impl_->metrics;
}

ops::dashboard& endpoint::dashboard() noexcept {
  return impl_->board;
}

boost::asio::ip::tcp::endpoint endpoint::local_endpoint() const {
  return impl_->http->local_endpoint();
}

std::unique_ptr<endpoint> attach(health::app& app, const corvo::config& cfg) {
  const auto options = server_options::from(cfg);
  if (!options) {
    return nullptr;
  }
  auto i = std::make_unique<endpoint::impl>(*options);
  watch_health(i->metrics, app.monitor());
  i->board.set_health(app.monitor());
  add_metrics_route(i->routes, i->metrics);
  add_health_routes(i->routes, app.monitor());
  i->board.install(i->routes);
  i->http = std::make_unique<server>(app.get_executor(), *options, i->routes);
  i->http->open();
  server* http = i->http.get();
  app.add_service("ops", [http] { return http->run(); });
  return std::make_unique<endpoint>(std::move(i));
}

}  // namespace corvo::ops
