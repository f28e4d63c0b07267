#include <boost/json/serialize.hpp>
#include <corvo/health/monitor.hpp>
#include <corvo/ops/endpoints.hpp>

namespace corvo::ops {

namespace {

asio::awaitable<response> serve_metrics(registry* metrics, const call& c) {
  co_await metrics->collect();
  co_return make_response(c.req, http::status::ok, metrics->render(),
                          "text/plain; version=0.0.4; charset=utf-8");
}

response serve_health(const health::monitor* monitor, const call& c, bool readiness) {
  auto summary = monitor->summary();
  bool ok = readiness ? summary.ready : summary.live;
  return make_response(c.req, ok ? http::status::ok : http::status::service_unavailable,
                       boost::json::serialize(summary.to_json()), "application/json");
}

asio::awaitable<response> serve_live(const health::monitor* m, const call& c) {
  co_return serve_health(m, c, false);
}

asio::awaitable<response> serve_ready(const health::monitor* m, const call& c) {
  co_return serve_health(m, c, true);
}

}  // namespace

void add_metrics_route(router& routes, registry& metrics) {
  registry* m = &metrics;
  routes.get("/metrics", [m](const call& c) { return serve_metrics(m, c); });
}

void add_health_routes(router& routes, const health::monitor& monitor) {
  const health::monitor* m = &monitor;
  routes.get("/health/live", [m](const call& c) { return serve_live(m, c); });
  routes.get("/health/ready", [m](const call& c) { return serve_ready(m, c); });
}

}  // namespace corvo::ops
