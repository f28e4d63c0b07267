#pragma once
// The composition root: services, dependencies and supervised components on one io_context,
// with a graceful, ordered shutdown on SIGINT/SIGTERM.
//
//   corvo::health::app app(corvo::health::app_options::from(cfg));
//   redis::client redis(app.get_executor(), redis_cfg);
//   app.add_service("redis", [&] { return redis.run(); });
//   auto redis_dep = app.add_dependency("redis", health::redis_ping_probe(redis));
//   app.add_component({"scheduler", [&] { return sched.run(); }}, {redis_dep});
//   return corvo::exit_code(app.run());
//
// Order: services start first and stop last (a client's run(): unsupervised, needed by
// everything); then the monitor; then the components, each under supervise() with its
// dependencies. add_component() returns the component's own dependency ("component:NAME",
// up while it runs): a component that lists it starts only after that one runs, stops when
// it stops, and restarts after it (dependency order).
//
// Shutdown (first SIGINT/SIGTERM, or request_stop()): components are cancelled one at a time
// in reverse registration order, each given what is left of `shutdown_deadline` (a
// component that does not finish in time is reported and the drain moves on to the next,
// so it holds up no other); then the monitor and the services. A second signal, or the
// deadline passing with work still running, stops the loop (run() then returns
// deadline_exceeded).
//
// Configuration (app_options::from, section `health`; any other key below it is a
// config_error naming the nearest known one):
//   health.probe_interval     time between probes                      (default 1s)
//   health.probe_timeout      a probe slower than this failed           (500ms)
//   health.failures_to_down   consecutive failures → down               (1)
//   health.successes_to_up    consecutive successes → up again          (1)
//   health.stop_timeout       a cancelled component must stop within    (1s)
//   health.restart_initial    first restart delay ceiling (full jitter) (50ms)
//   health.restart_max        largest restart delay                     (5s)
//   health.shutdown_deadline  the whole drain on SIGTERM                (10s)

#include <chrono>
#include <corvo/core/config.hpp>
#include <corvo/core/runtime.hpp>
#include <corvo/health/monitor.hpp>
#include <corvo/health/supervise.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::health {

struct app_options {
  /// Options of the dependencies added with add_dependency(name, probe).
  probe_options probes{};
  /// Policy of the components added without one.
  supervise_policy policy{};
  /// The whole shutdown drain.
  std::chrono::milliseconds shutdown_deadline{10'000};
  /// Signals that start the shutdown; empty installs no handler.
  std::vector<int> stop_signals{2 /* SIGINT */, 15 /* SIGTERM */};

  /// Reads the `health` section (see the file comment) and rejects unknown keys in it.
  static app_options from(const corvo::config& cfg);
};

class app {
 public:
  explicit app(app_options options = {});
  ~app();
  app(const app&) = delete;
  app& operator=(const app&) = delete;

  asio::io_context& context() noexcept;
  asio::any_io_executor get_executor() noexcept;
  health::monitor& monitor() noexcept;
  const app_options& options() const noexcept;

  /// A probed dependency with the app's probe options, or with `options`.
  dependency add_dependency(std::string name, probe_fn probe);
  dependency add_dependency(std::string name, probe_fn probe, probe_options options);

  /// A service that runs from start to the end of the shutdown, unsupervised.
  void add_service(std::string name, std::function<asio::awaitable<void>()> run);

  /// A supervised component (see supervise.hpp), with the app's policy or `policy`.
  /// Returns its own dependency "component:NAME" (see the file comment).
  dependency add_component(component c, std::vector<dependency> dependencies);
  dependency add_component(component c, std::vector<dependency> dependencies,
                           supervise_policy policy);

  /// The supervision of component `name`; std::out_of_range if there is none.
  supervision& supervision_of(std::string_view name);
  /// Every component's supervision, in registration order.
  std::vector<supervision*> supervisions();

  /// Runs everything on the calling thread until the shutdown is done (or every component
  /// returned): completed, stopped, failed, or deadline_exceeded. Call once.
  run_result run();

  /// The same as a coroutine, for an application that owns its loop: runs until cancelled
  /// (terminal), then drains as described above and throws operation_aborted.
  asio::awaitable<void> serve();

  /// Starts the shutdown, as SIGTERM does. Call on the loop's thread or from run()'s caller.
  void request_stop();

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace corvo::health
