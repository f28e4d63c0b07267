#pragma once
// The ops endpoint of an application built on health::app, turned on by configuration:
//
//   corvo::health::app app(corvo::health::app_options::from(cfg));
//   auto endpoint = corvo::ops::attach(app, cfg);  // nullptr unless ops.listen is set
//   if (endpoint) {
//     corvo::ops::watch_scheduler(endpoint->metrics(), sched, "mail");
//     endpoint->dashboard().add_namespace("mail", sched);  // with its events setting
//   }
//   return corvo::exit_code(app.run());
//
// attach() reads the `ops` section (server_options::from: an unknown key, or a non-loopback
// address without `ops.token`, is a config_error), builds the registry (with watch_health of
// the app's monitor), a router with /metrics, /health/live, /health/ready and the dashboard
// (its health view set), binds the socket at once (a port in use fails here, not later), and
// adds the server to the app as a service: it serves while app.run() runs and stops with the
// services at the end of the shutdown. The returned endpoint must outlive app.run().

#include <boost/asio/ip/tcp.hpp>
#include <corvo/core/config.hpp>
#include <corvo/ops/dashboard.hpp>
#include <corvo/ops/metrics.hpp>
#include <memory>

namespace corvo::health {
class app;
}

namespace corvo::ops {

class endpoint {
 public:
  ~endpoint();
  endpoint(const endpoint&) = delete;
  endpoint& operator=(const endpoint&) = delete;

  /// The registry /metrics renders: add the layers' watch_* collectors to it.
  registry& metrics() noexcept;
  /// The dashboard: add namespaces, streams and queues to it.
  ops::dashboard& dashboard() noexcept;
  /// The bound address (a configured port 0 becomes the port chosen).
  boost::asio::ip::tcp::endpoint local_endpoint() const;

  struct impl;
  explicit endpoint(std::unique_ptr<impl> i);

 private:
  std::unique_ptr<impl> impl_;
};

/// The endpoint configured by `cfg`'s `ops` section, serving as a service of `app`; nullptr
/// when `ops.listen` is not set. Throws config_error (see above) and system_error when the
/// address cannot be bound.
std::unique_ptr<endpoint> attach(health::app& app, const corvo::config& cfg);

}  // namespace corvo::ops
