#pragma once
// The standard routes of the ops endpoint.
//
//   GET /metrics        the registry in Prometheus text format (collectors run first)
//   GET /health/live    200 when the health monitor's loops are alive, else 503
//   GET /health/ready   200 when no dependency is down, else 503
// Both health routes answer with health_summary::to_json(). With a token configured, every
// one of them needs it (router.hpp).

#include <corvo/ops/metrics.hpp>
#include <corvo/ops/router.hpp>

namespace corvo::health {
class monitor;
}

namespace corvo::ops {

/// GET /metrics from `metrics` (which must outlive the router).
void add_metrics_route(router& routes, registry& metrics);

/// GET /health/live and /health/ready from `monitor` (which must outlive the router).
void add_health_routes(router& routes, const health::monitor& monitor);

}  // namespace corvo::ops
