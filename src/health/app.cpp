#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/health/app.hpp>
#include <stdexcept>

namespace corvo::health {
namespace {

using steady = std::chrono::steady_clock;

struct service {
  std::string name;
  std::function<asio::awaitable<void>()> run;
};

asio::awaitable<void> run_service(std::string name, std::function<asio::awaitable<void>()> run) {
  try {
    co_await run();
  } catch (...) {
    const auto failure = std::current_exception();
    if (!is_operation_aborted(failure)) {
      CORVO_LOG(error, "health") << "service " << name << " failed: " << describe(failure);
    }
    throw;
  }
}

asio::awaitable<void> run_supervision(supervision* s) {
  co_await s->run();
}

// Joins `group` within `budget`; reports and returns false when it did not finish.
asio::awaitable<bool> drain(task_group& group, const std::string& what,
                            steady::time_point deadline) {
  bool done = false;
  try {
    if (deadline == steady::time_point::max()) {
      co_await group.join();
      done = true;
    } else {
      done = co_await group.join_for(std::max(deadline - steady::now(), steady::duration::zero()));
    }
  } catch (...) {
    const auto failure = std::current_exception();
    done = true;
    if (!is_operation_aborted(failure)) {
      CORVO_LOG(warning, "health") << what << " ended with: " << describe(failure);
    }
  }
  if (!done) {
    CORVO_LOG(error, "health") << what << " did not stop before the shutdown deadline; moving on";
  }
  co_return done;
}

}  // namespace

app_options app_options::from(const corvo::config& cfg) {
  app_options o;
  const auto h = cfg.section("health");
  o.probes.interval = h.get_or("probe_interval", o.probes.interval);
  o.probes.timeout = h.get_or("probe_timeout", o.probes.timeout);
  o.probes.failures_to_down = h.get_or("failures_to_down", o.probes.failures_to_down);
  o.probes.successes_to_up = h.get_or("successes_to_up", o.probes.successes_to_up);
  o.policy.stop_timeout = h.get_or("stop_timeout", o.policy.stop_timeout);
  o.policy.restart_backoff.initial = h.get_or("restart_initial", o.policy.restart_backoff.initial);
  o.policy.restart_backoff.max = h.get_or("restart_max", o.policy.restart_backoff.max);
  o.shutdown_deadline = h.get_or("shutdown_deadline", o.shutdown_deadline);
  if (o.probes.failures_to_down < 1) {
    throw config_error("health.failures_to_down",
                       "config: key 'health.failures_to_down' must be at least 1");
  }
  if (o.probes.successes_to_up < 1) {
    throw config_error("health.successes_to_up",
                       "config: key 'health.successes_to_up' must be at least 1");
  }
  if (o.probes.timeout.count() <= 0 || o.probes.interval.count() <= 0) {
    throw config_error(
        "health.probe_timeout",
        "config: keys 'health.probe_interval' and 'health.probe_timeout' must be positive");
  }
  cfg.reject_unknown_keys("health");
  return o;
}

struct app::impl {
  explicit impl(app_options o)
      : options(std::move(o)),
        rt(runtime_options{options.shutdown_deadline + std::chrono::milliseconds(500),
                           options.stop_signals}),
        health(rt.get_executor()) {}

  app_options options;
  runtime rt;
  health::monitor health;
  std::vector<service> services;
  std::vector<std::unique_ptr<supervision>> components;
  bool stop_requested = false;
  std::unique_ptr<asio::steady_timer> stop_timer;  // wakes serve() on request_stop()
};

app::app(app_options options) : impl_(std::make_unique<impl>(std::move(options))) {}

app::~app() = default;

asio::io_context& app::context() noexcept {
  return impl_->rt.context();
}

asio::any_io_executor app::get_executor() noexcept {
  return impl_->rt.get_executor();
}

monitor& app::monitor() noexcept {
  return impl_->health;
}

const app_options& app::options() const noexcept {
  return impl_->options;
}

dependency app::add_dependency(std::string name, probe_fn probe) {
  return add_dependency(std::move(name), std::move(probe), impl_->options.probes);
}

dependency app::add_dependency(std::string name, probe_fn probe, probe_options options) {
  return impl_->health.add(std::move(name), std::move(probe), options);
}

void app::add_service(std::string name, std::function<asio::awaitable<void>()> run) {
  impl_->services.push_back({std::move(name), std::move(run)});
}

dependency app::add_component(component c, std::vector<dependency> dependencies) {
  return add_component(std::move(c), std::move(dependencies), impl_->options.policy);
}

dependency app::add_component(component c, std::vector<dependency> dependencies,
                              supervise_policy policy) {
  probe_options immediate;  // a component's own state needs no thresholds
  auto own = impl_->health.add_passive("component:" + c.name, immediate);
  auto s = std::make_unique<supervision>(std::move(c), std::move(dependencies), policy);
  auto* m = &impl_->health;
  s->on_transition([m, own](const supervision&, supervision_state, supervision_state to) {
    if (to == supervision_state::running) {
      m->record(own, probe_result{status::up, ""});
    } else if (m->state(own) != status::down) {
      m->record(own,
                probe_result{status::down, std::string("component ") + std::string(to_string(to))});
    }
  });
  impl_->components.push_back(std::move(s));
  return own;
}

supervision& app::supervision_of(std::string_view name) {
  for (auto& s : impl_->components) {
    if (s->name() == name) {
      return *s;
    }
  }
  throw std::out_of_range("health::app: no component named '" + std::string(name) + "'");
}

std::vector<supervision*> app::supervisions() {
  std::vector<supervision*> out;
  for (auto& s : impl_->components) {
    out.push_back(s.get());
  }
  return out;
}

asio::awaitable<void> app::serve() {
  auto ex = co_await asio::this_coro::executor;
  task_group services(
      ex, task_group_options{.max_in_flight = 0, .on_failure = failure_policy::collect_errors});
  task_group probing(ex);
  std::vector<std::unique_ptr<task_group>> components;
  impl_->stop_timer = std::make_unique<asio::steady_timer>(ex, steady::time_point::max());
  std::exception_ptr ended_by;
  try {
    for (auto& s : impl_->services) {
      co_await services.spawn(run_service(s.name, s.run));
    }
    co_await probing.spawn(impl_->health.run());
    for (auto& s : impl_->components) {
      components.push_back(std::make_unique<task_group>(ex));
      co_await components.back()->spawn(run_supervision(s.get()));
    }
    if (!impl_->stop_requested) {
      if (components.empty()) {
        boost::system::error_code ignored;
        co_await impl_->stop_timer->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      } else {
        for (auto& g : components) {
          co_await g->wait_idle();  // cancellation leaves the components running: drained below
          if (impl_->stop_requested) {
            break;
          }
        }
      }
    }
  } catch (...) {
    ended_by = std::current_exception();
  }
  const auto cancellation = co_await asio::this_coro::cancellation_state;
  const bool cancelled =
      cancellation.cancelled() != asio::cancellation_type::none || impl_->stop_requested;
  co_await asio::this_coro::reset_cancellation_state();

  const auto began = steady::now();
  const auto deadline = began + impl_->options.shutdown_deadline;
  CORVO_LOG(info, "health") << "draining " << components.size() << " component(s), deadline "
                            << impl_->options.shutdown_deadline.count() << " ms";
  bool all_stopped = true;
  for (std::size_t i = components.size(); i-- > 0;) {
    components[i]->cancel();
    all_stopped &=
        co_await drain(*components[i], "component " + impl_->components[i]->name(), deadline);
  }
  probing.cancel();
  co_await drain(probing, "health monitor", deadline);
  services.cancel();
  all_stopped &= co_await drain(services, "services", deadline);
  CORVO_LOG(info, "health")
      << "drained in "
      << std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - began).count()
      << " ms";
  if (!all_stopped) {
    // Whatever is still running holds references into this frame: wait for it (the
    // runtime's deadline stops the loop if it never ends).
    for (auto& g : components) {
      co_await drain(*g, "late component", steady::time_point::max());
    }
    co_await drain(services, "late services", steady::time_point::max());
  }
  if (cancelled) {
    throw boost::system::system_error(asio::error::operation_aborted, "health::app");
  }
  if (ended_by) {
    std::rethrow_exception(ended_by);
  }
}

run_result app::run() {
  return impl_->rt.run(serve());
}

void app::request_stop() {
  impl_->stop_requested = true;
  if (impl_->stop_timer) {
    impl_->stop_timer->cancel();
  }
  impl_->rt.request_stop();
}

}  // namespace corvo::health
