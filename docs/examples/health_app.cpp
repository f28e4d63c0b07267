// The health layer docs/health.md shows, as a complete program that needs no server: a
// component supervised on a user-defined dependency (a probe of our own), taken down and
// brought back, then a graceful stop as SIGTERM would do it. The install.find_package test
// builds and runs it; docs_snippets_test checks that docs/health.md quotes it verbatim.
#include <boost/asio/co_spawn.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/exception.hpp>
#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono_literals;

// [app]
#include <corvo/health/app.hpp>

namespace health = corvo::health;

bool database_up = true;  // what our probe finds (a real one would query the database)

asio::awaitable<bool> ping_database() {
  co_return database_up;
}

asio::awaitable<void> ingest(int* starts) {  // runs until cancelled
  ++*starts;
  co_await corvo::sleep_for(1h);
}

asio::awaitable<void> outage(health::app& app, health::dependency db, const int* starts) {
  while (*starts < 1) {
    co_await corvo::sleep_for(10ms);
  }
  database_up = false;  // the probe fails: the component is cancelled
  while (app.supervision_of("ingest").state() != health::supervision_state::waiting) {
    co_await corvo::sleep_for(10ms);
  }
  std::cout << db.name() << " is " << to_string(db.state()) << "; ingest stopped\n";
  database_up = true;  // the probe succeeds: the component restarts
  while (*starts < 2) {
    co_await corvo::sleep_for(10ms);
  }
  std::cout << "ingest restarted\n";
  app.request_stop();  // as SIGTERM: drain in reverse order
}

int main() {
  health::app_options options;  // or health::app_options::from(config): health.* keys
  options.probes.interval = 20ms;
  health::app app(options);
  auto db = app.add_dependency("database", health::probe_from(ping_database));
  int starts = 0;
  app.add_component({"ingest", [&starts] { return ingest(&starts); }}, {db});
  asio::co_spawn(app.get_executor(), outage(app, db, &starts), [](std::exception_ptr e) {
    if (e)
      std::cerr << corvo::describe(e) << "\n";
  });
  return corvo::exit_code(app.run());
}
// [/app]
