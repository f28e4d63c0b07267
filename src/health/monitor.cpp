#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/notifier.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/health/monitor.hpp>
#include <optional>
#include <stdexcept>

namespace corvo::health {
namespace {

using steady = std::chrono::steady_clock;

// The pause between two probes: a timed wait, cut short by cancel() (a reported failure).
std::unique_ptr<asio::steady_timer> make_pause(const asio::any_io_executor& ex) {
  auto t = std::make_unique<asio::steady_timer>(ex);
  t->expires_at(steady::time_point::max());
  return t;
}

asio::awaitable<void> wait_on(asio::steady_timer& t) {
  boost::system::error_code ignored;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

bool cancelled(const asio::cancellation_state& s) {
  return s.cancelled() != asio::cancellation_type::none;
}

struct bool_probe {
  std::function<asio::awaitable<bool>()> healthy;
  asio::awaitable<probe_result> operator()() const {
    const bool ok = co_await healthy();
    co_return probe_result{ok ? status::up : status::down, ok ? "" : "probe said unhealthy"};
  }
};

}  // namespace

std::string_view to_string(status s) noexcept {
  switch (s) {
    case status::up:
      return "up";
    case status::degraded:
      return "degraded";
    case status::down:
      return "down";
  }
  return "unknown";
}

probe_fn probe_from(std::function<asio::awaitable<bool>()> healthy) {
  return bool_probe{std::move(healthy)};
}

struct monitor::impl {
  struct entry {
    std::string name;
    probe_fn probe;  // empty: passive
    probe_options options;
    status state = status::down;
    std::string detail = "not probed yet";
    steady::time_point since = steady::now();
    steady::time_point last_result{};
    unsigned failures_in_row = 0;
    unsigned successes_in_row = 0;
    dependency_stats stats;
    std::unique_ptr<asio::steady_timer> pause;  // between probes; cancelled by a report
    bool probe_now = false;
    bool looping = false;
    /// When a component last reported a failure: a probe started before it may carry a
    /// stale "up" (its answer was on the way when the connection broke), which is ignored.
    steady::time_point failure_reported{};
  };

  explicit impl(asio::any_io_executor ex) : executor(ex), changed(ex) {}

  asio::any_io_executor executor;
  std::vector<std::unique_ptr<entry>> entries;
  std::uint64_t version = 0;
  corvo::notifier changed;  // every transition: wakes wait_changed()
  std::vector<transition_observer> observers;
  task_group* probers = nullptr;  // while run() is active
  bool running = false;

  entry& at(const dependency& d) {
    if (d.index() >= entries.size()) {
      throw std::out_of_range("health::monitor: unknown dependency");
    }
    return *entries[d.index()];
  }

  void transition(monitor& self, std::size_t index, status next, const std::string& detail) {
    auto& e = *entries[index];
    const auto previous = e.state;
    e.state = next;
    e.since = steady::now();
    e.detail = detail;
    ++e.stats.transitions;
    if (next == status::down) {
      ++e.stats.downs;
      CORVO_LOG(warning, "health") << e.name << ": " << to_string(previous) << " -> down"
                                   << (detail.empty() ? "" : " (" + detail + ")");
    } else {
      CORVO_LOG(info, "health") << e.name << ": " << to_string(previous) << " -> "
                                << to_string(next) << (detail.empty() ? "" : " (" + detail + ")");
    }
    ++version;
    changed.notify_all();
    const dependency d(&self, index);
    for (const auto& observer : observers) {
      observer(d, previous, next, detail);
    }
  }

  void record(monitor& self, std::size_t index, probe_result result) {
    auto& e = *entries[index];
    ++e.stats.probes;
    e.last_result = steady::now();
    if (result.state == status::down) {
      ++e.stats.failures;
      e.successes_in_row = 0;
      ++e.failures_in_row;
      if (e.state == status::down) {
        e.detail = result.detail;  // the latest reason, no transition
        return;
      }
      const auto next =
          e.failures_in_row >= e.options.failures_to_down ? status::down : status::degraded;
      if (next != e.state) {
        transition(self, index, next, result.detail);
      }
      return;
    }
    // up or degraded: the dependency serves.
    e.failures_in_row = 0;
    ++e.successes_in_row;
    if (e.state == status::down && e.successes_in_row < e.options.successes_to_up) {
      return;
    }
    if (result.state != e.state) {
      transition(self, index, result.state, result.detail);
    }
  }

  asio::awaitable<probe_result> probe_once(entry& e) {
    std::optional<probe_result> result;
    std::exception_ptr failure;
    try {
      result = co_await with_timeout(e.probe(), e.options.timeout);
    } catch (...) {
      failure = std::current_exception();
    }
    // A probe cut short by our own cancellation says nothing about the dependency.
    const auto cancellation = co_await asio::this_coro::cancellation_state;
    if (cancelled(cancellation)) {
      throw boost::system::system_error(asio::error::operation_aborted, "health probe");
    }
    if (failure) {
      auto text = describe(failure);
      if (is_timed_out(failure)) {
        text = "no answer within " + std::to_string(e.options.timeout.count()) + " ms";
      }
      co_return probe_result{status::down, std::move(text)};
    }
    co_return std::move(*result);
  }

  static bool is_timed_out(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const boost::system::system_error& s) {
      return s.code() == corvo::error::timed_out;
    } catch (...) {
      return false;
    }
  }

  asio::awaitable<void> probe_loop(monitor& self, std::size_t index) {
    auto& e = *entries[index];
    e.looping = true;
    try {
      for (;;) {
        e.probe_now = false;
        const auto started = steady::now();
        auto result = co_await probe_once(e);
        if (result.state == status::down || started > e.failure_reported) {
          record(self, index, std::move(result));
        }  // else: a success that predates a reported failure; probe_now is set: again

        if (!e.probe_now) {
          e.pause->expires_after(e.options.interval);
          co_await wait_on(*e.pause);
          const auto cancellation = co_await asio::this_coro::cancellation_state;
          if (cancelled(cancellation)) {
            throw boost::system::system_error(asio::error::operation_aborted, "health probe");
          }
        }
      }
    } catch (...) {
      e.looping = false;
      throw;
    }
  }
};

const std::string& dependency::name() const {
  return monitor_->impl_->at(*this).name;
}

status dependency::state() const {
  return monitor_->state(*this);
}

void dependency::report_failure(std::string_view detail) const {
  monitor_->report_failure(*this, detail);
}

monitor::monitor(executor_type executor) : impl_(std::make_shared<impl>(std::move(executor))) {}

monitor::~monitor() = default;

monitor::executor_type monitor::get_executor() const noexcept {
  return impl_->executor;
}

dependency monitor::add(std::string name, probe_fn probe, probe_options options) {
  if (options.failures_to_down < 1 || options.successes_to_up < 1) {
    throw std::invalid_argument("health::monitor: thresholds must be at least 1 (" + name + ")");
  }
  for (const auto& e : impl_->entries) {
    if (e->name == name) {
      throw std::invalid_argument("health::monitor: dependency '" + name + "' exists already");
    }
  }
  auto e = std::make_unique<impl::entry>();
  e->name = std::move(name);
  e->probe = std::move(probe);
  e->options = options;
  e->pause = make_pause(impl_->executor);
  impl_->entries.push_back(std::move(e));
  const dependency d(this, impl_->entries.size() - 1);
  if (impl_->probers != nullptr && impl_->entries.back()->probe) {
    // Added while running: start its loop too (spawn does not suspend: the group is unbounded).
    asio::co_spawn(impl_->executor, impl_->probers->spawn(impl_->probe_loop(*this, d.index())),
                   [](std::exception_ptr, bool) {});
  }
  return d;
}

dependency monitor::add_passive(std::string name, probe_options options) {
  return add(std::move(name), probe_fn{}, options);
}

dependency monitor::find(std::string_view name) const {
  for (std::size_t i = 0; i < impl_->entries.size(); ++i) {
    if (impl_->entries[i]->name == name) {
      return dependency(const_cast<monitor*>(this), i);
    }
  }
  throw std::out_of_range("health::monitor: no dependency named '" + std::string(name) + "'");
}

void monitor::record(const dependency& dep, probe_result result) {
  impl_->at(dep);
  impl_->record(*this, dep.index(), std::move(result));
}

void monitor::report_failure(const dependency& dep, std::string_view detail) {
  auto& e = impl_->at(dep);
  ++e.stats.reports;
  e.failure_reported = steady::now();
  CORVO_LOG(info, "health") << e.name << ": failure reported: " << detail;
  impl_->record(*this, dep.index(), probe_result{status::down, std::string(detail)});
  if (e.probe) {
    e.probe_now = true;
    e.pause->cancel();
  }
}

asio::awaitable<void> monitor::run() {
  if (impl_->running) {
    throw std::logic_error("health::monitor::run() is already running");
  }
  auto ex = co_await asio::this_coro::executor;
  task_group probers(ex);
  impl_->running = true;
  impl_->probers = &probers;
  std::exception_ptr ended_by;
  try {
    for (std::size_t i = 0; i < impl_->entries.size(); ++i) {
      if (impl_->entries[i]->probe) {
        co_await probers.spawn(impl_->probe_loop(*this, i));
      }
    }
    co_await probers.join();
  } catch (...) {
    ended_by = std::current_exception();
  }
  impl_->probers = nullptr;
  impl_->running = false;
  co_await asio::this_coro::reset_cancellation_state();
  probers.cancel();
  try {
    co_await probers.join();
  } catch (...) {
  }
  std::rethrow_exception(ended_by ? ended_by
                                  : std::make_exception_ptr(boost::system::system_error(
                                        asio::error::operation_aborted, "health::monitor::run")));
}

status monitor::state(const dependency& dep) const {
  return impl_->at(dep).state;
}

dependency_report monitor::report(const dependency& dep) const {
  const auto& e = impl_->at(dep);
  return dependency_report{e.name, e.state, e.detail, e.since, e.last_result, e.stats};
}

std::vector<dependency_report> monitor::state() const {
  std::vector<dependency_report> out;
  out.reserve(impl_->entries.size());
  for (std::size_t i = 0; i < impl_->entries.size(); ++i) {
    out.push_back(report(dependency(const_cast<monitor*>(this), i)));
  }
  return out;
}

health_summary monitor::summary() const {
  health_summary s;
  s.dependencies = state();
  s.ready = true;
  s.live = impl_->running;
  const auto now = steady::now();
  for (std::size_t i = 0; i < impl_->entries.size(); ++i) {
    const auto& e = *impl_->entries[i];
    if (e.state == status::down) {
      s.ready = false;
    }
    if (e.probe) {
      const auto allowed = 2 * e.options.interval + e.options.timeout + std::chrono::seconds(1);
      const auto reference = e.last_result == steady::time_point{} ? e.since : e.last_result;
      if (!e.looping || now - reference > allowed) {
        s.live = false;
      }
    }
  }
  return s;
}

boost::json::value health_summary::to_json() const {
  boost::json::array deps;
  const auto now = steady::now();
  for (const auto& d : dependencies) {
    boost::json::object o;
    o["name"] = d.name;
    o["state"] = std::string(to_string(d.state));
    o["detail"] = d.detail;
    o["since_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(now - d.since).count();
    o["probes"] = d.stats.probes;
    o["failures"] = d.stats.failures;
    o["reports"] = d.stats.reports;
    o["transitions"] = d.stats.transitions;
    deps.push_back(std::move(o));
  }
  boost::json::object root;
  root["live"] = live;
  root["ready"] = ready;
  root["dependencies"] = std::move(deps);
  return root;
}

std::uint64_t monitor::version() const noexcept {
  return impl_->version;
}

asio::awaitable<std::uint64_t> monitor::wait_changed(std::uint64_t seen) {
  // Keep the state alive across the wait even if the monitor goes away meanwhile.
  const auto self = impl_;
  while (self->version == seen) {
    co_await self->changed.wait();  // cancellation: throws operation_aborted
  }
  co_return self->version;
}

void monitor::on_transition(transition_observer observer) {
  impl_->observers.push_back(std::move(observer));
}

std::size_t monitor::size() const noexcept {
  return impl_->entries.size();
}

}  // namespace corvo::health
