#include "fanout_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/serialize.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/notifier.hpp>
#include <corvo/core/task_group.hpp>
#include <deque>
#include <set>
#include <stdexcept>
#include <vector>

namespace live_fanout {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
namespace pubsub = corvo::pubsub;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

const char* to_string(subscription_mode mode) noexcept {
  switch (mode) {
    case subscription_mode::channel:
      return "channel";
    case subscription_mode::pattern:
      return "pattern";
    case subscription_mode::shard:
      return "shard";
  }
  return "?";
}

const char* to_string(slow_policy policy) noexcept {
  return policy == slow_policy::drop_oldest ? "drop_oldest" : "disconnect";
}

fanout_options fanout_options::from(const corvo::config& cfg) {
  fanout_options o;
  const auto section = cfg.section("live_fanout");
  const auto listen = section.get_or<std::string>("listen", "127.0.0.1:0");
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    throw corvo::config_error("live_fanout.listen", "expected host:port, got \"" + listen + "\"");
  }
  o.listen_address = listen.substr(0, colon);
  try {
    const auto port = std::stoul(listen.substr(colon + 1));
    if (port > 65535) {
      throw std::out_of_range("port");
    }
    o.port = static_cast<std::uint16_t>(port);
  } catch (const std::logic_error&) {
    throw corvo::config_error("live_fanout.listen", "bad port in \"" + listen + "\"");
  }
  const auto mode = section.get_or<std::string>("subscription", "pattern");
  if (mode == "channel") {
    o.subscription = subscription_mode::channel;
  } else if (mode == "pattern") {
    o.subscription = subscription_mode::pattern;
  } else if (mode == "shard") {
    o.subscription = subscription_mode::shard;
  } else {
    throw corvo::config_error("live_fanout.subscription",
                              "expected channel, pattern or shard, got \"" + mode + "\"");
  }
  o.client_queue = section.get_or<std::size_t>("client_queue", o.client_queue);
  if (o.client_queue == 0) {
    throw corvo::config_error("live_fanout.client_queue", "must be at least 1");
  }
  const auto policy = section.get_or<std::string>("slow_policy", "drop_oldest");
  if (policy == "drop_oldest") {
    o.policy = slow_policy::drop_oldest;
  } else if (policy == "disconnect") {
    o.policy = slow_policy::disconnect;
  } else {
    throw corvo::config_error("live_fanout.slow_policy",
                              "expected drop_oldest or disconnect, got \"" + policy + "\"");
  }
  cfg.reject_unknown_keys("live_fanout");
  return o;
}

namespace {

constexpr std::string_view room_prefix = "room.";

bool valid_room_name(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return false;
  }
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace

struct session {
  session(tcp::socket socket, asio::any_io_executor ex)
      : ws(beast::tcp_stream(std::move(socket))), wake(ex) {}

  websocket::stream<beast::tcp_stream> ws;
  std::string room;  // empty until joined
  std::deque<std::shared_ptr<const std::string>> outbox;
  corvo::notifier wake;  // a frame was queued, or the session closed
  bool closed = false;

  void close() {
    if (!closed) {
      closed = true;
      boost::system::error_code ignored;
      beast::get_lowest_layer(ws).socket().close(ignored);
      wake.notify_all();
    }
  }
};

// A room's subscription holds for the subscriber that confirmed it (channel and shard modes).
struct room_state {
  std::vector<std::shared_ptr<session>> sessions;
  bool subscribed = false;
  bool subscribing = false;
};

struct fanout_server::impl : std::enable_shared_from_this<impl> {
  impl(asio::any_io_executor ex, corvo::redis::client_config redis, fanout_options o,
       pubsub::subscriber_options sub_options)
      : executor(ex),
        options(std::move(o)),
        redis_config(std::move(redis)),
        subscriber_options(sub_options),
        acceptor(ex),
        subscription_changed(ex) {
    const tcp::endpoint at(asio::ip::make_address(options.listen_address), options.port);
    acceptor.open(at.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(at);
    acceptor.listen();
  }

  asio::any_io_executor executor;
  fanout_options options;
  corvo::redis::client_config redis_config;
  pubsub::subscriber_options subscriber_options;
  tcp::acceptor acceptor;
  // The running subscriber (null while none runs) and its run number: a subscription
  // confirmed by an earlier subscriber counts for nothing.
  std::shared_ptr<pubsub::subscriber> active;
  std::uint64_t generation = 0;
  bool pattern_subscribed = false;
  corvo::notifier subscription_changed;  // active, a room or the pattern changed state
  std::map<std::string, room_state> rooms;
  std::set<std::shared_ptr<session>> sessions;
  fanout_stats counters;
  pubsub::subscriber_stats finished_subscribers;  // summed over the subscribers that ended
  const corvo::health::supervision* supervision = nullptr;  // add_to()'s component

  // ---- subscriptions ---------------------------------------------------------------------

  std::vector<std::string> room_channels() const {
    std::vector<std::string> channels;
    for (const auto& [name, room] : rooms) {
      channels.push_back(std::string(room_prefix) + name);
    }
    return channels;
  }

  // What a new subscriber subscribes before it routes: the pattern, or every room so far.
  asio::awaitable<void> subscribe_all(pubsub::subscriber& sub, std::uint64_t run) {
    if (options.subscription == subscription_mode::pattern) {
      std::vector<std::string> patterns{std::string(room_prefix) + "*"};
      co_await sub.psubscribe(patterns);
      pattern_subscribed = true;
      subscription_changed.notify_all();
      co_return;
    }
    std::vector<std::string> names;
    for (auto& [name, room] : rooms) {
      if (!room.subscribing) {  // a join subscribing it already
        room.subscribing = true;
        names.push_back(name);
      }
    }
    if (names.empty()) {
      co_return;
    }
    std::vector<std::string> channels;
    for (const auto& name : names) {
      channels.push_back(std::string(room_prefix) + name);
    }
    std::exception_ptr failed;
    try {
      if (options.subscription == subscription_mode::channel) {
        co_await sub.subscribe(channels);
      } else {
        co_await sub.ssubscribe(channels);
      }
    } catch (...) {
      failed = std::current_exception();
    }
    if (run == generation) {  // else the stop reset the rooms already
      for (const auto& name : names) {
        auto& room = rooms.at(name);
        room.subscribing = false;
        room.subscribed = !failed;
      }
      subscription_changed.notify_all();
    }
    if (failed) {
      std::rethrow_exception(failed);
    }
  }

  // Returns once the room's messages reach this server (its subscription is confirmed by the
  // running subscriber); waits while no subscriber runs.
  asio::awaitable<void> ensure_subscribed(const std::string& name) {
    auto& room = rooms.try_emplace(name).first->second;
    for (;;) {
      if (options.subscription == subscription_mode::pattern) {
        if (active && pattern_subscribed) {
          co_return;
        }
        co_await subscription_changed.wait();
        continue;
      }
      if (active && room.subscribed) {
        co_return;
      }
      if (!active || room.subscribing) {
        co_await subscription_changed.wait();
        continue;
      }
      room.subscribing = true;
      const auto run = generation;
      const auto sub = active;  // held: the stop may drop `active` meanwhile
      std::vector<std::string> channels{std::string(room_prefix) + name};
      std::exception_ptr failed;
      try {
        if (options.subscription == subscription_mode::channel) {
          co_await sub->subscribe(channels);
        } else {
          co_await sub->ssubscribe(channels);
        }
      } catch (...) {
        failed = std::current_exception();
      }
      if (run != generation) {
        continue;  // that subscriber stopped meanwhile: wait for the next one
      }
      room.subscribing = false;
      room.subscribed = !failed;
      subscription_changed.notify_all();
      if (failed) {
        std::rethrow_exception(failed);
      }
    }
  }

  void attach(std::shared_ptr<pubsub::subscriber> sub) {
    active = std::move(sub);
    ++generation;
    ++counters.subscriber_runs;
    subscription_changed.notify_all();
  }

  // The subscriber stopped: no room is subscribed any more, joins wait for the next one.
  void detach() {
    const auto ended = active->stats();
    auto& sum = finished_subscribers;
    sum.received += ended.received;
    sum.delivered += ended.delivered;
    sum.dropped += ended.dropped;
    sum.resubscriptions += ended.resubscriptions;
    sum.refused += ended.refused;
    active.reset();
    ++generation;
    pattern_subscribed = false;
    for (auto& [name, room] : rooms) {
      room.subscribed = false;
      room.subscribing = false;
    }
    subscription_changed.notify_all();
  }

  static asio::awaitable<void> run_subscriber(std::shared_ptr<impl> self) {
    if (self->active) {
      throw std::logic_error("live_fanout: a subscriber runs already");
    }
    auto ex = co_await asio::this_coro::executor;
    auto sub =
        std::make_shared<pubsub::subscriber>(ex, self->redis_config, self->subscriber_options);
    corvo::task_group connection(ex);
    co_await connection.spawn(sub->run());
    self->attach(sub);
    const auto run = self->generation;
    std::exception_ptr ended_by;
    try {
      co_await self->subscribe_all(*sub, run);
      for (;;) {
        pubsub::message m = co_await sub->receive();
        self->route(std::move(m));
      }
    } catch (...) {
      ended_by = std::current_exception();
    }
    self->detach();
    sub->cancel();
    co_await asio::this_coro::reset_cancellation_state();
    // What the subscriber had received still goes out; then it says it stopped.
    try {
      for (;;) {
        pubsub::message m = co_await sub->receive();
        self->route(std::move(m));
      }
    } catch (const std::exception& e) {
      CORVO_LOG(debug, "live_fanout") << "subscriber drained: " << e.what();
    }
    try {
      co_await connection.join();
    } catch (const std::exception& e) {
      CORVO_LOG(debug, "live_fanout") << "subscriber connection ended: " << e.what();
    }
    std::rethrow_exception(ended_by);
  }

  // ---- routing ---------------------------------------------------------------------------

  void route(pubsub::message m) {
    ++counters.routed;
    std::string_view channel = m.channel;
    if (channel.substr(0, room_prefix.size()) != room_prefix) {
      ++counters.unroutable;
      return;
    }
    const auto it = rooms.find(std::string(channel.substr(room_prefix.size())));
    if (it == rooms.end() || it->second.sessions.empty()) {
      ++counters.unroutable;
      return;
    }
    // One copy of the payload, shared by every client's outbox.
    const auto frame = std::make_shared<const std::string>(std::move(m.payload));
    for (const auto& s : it->second.sessions) {
      enqueue(*s, frame);
    }
  }

  void enqueue(session& s, const std::shared_ptr<const std::string>& frame) {
    if (s.closed) {
      return;
    }
    if (s.outbox.size() >= options.client_queue) {
      if (options.policy == slow_policy::disconnect) {
        ++counters.slow_disconnects;
        CORVO_LOG(info, "live_fanout") << "closing a slow client of room " << s.room;
        s.close();
        return;
      }
      s.outbox.pop_front();
      ++counters.dropped;
    }
    s.outbox.push_back(frame);
    ++counters.queued;
    s.wake.notify_all();
  }

  // ---- clients ---------------------------------------------------------------------------

  asio::awaitable<void> accept(corvo::task_group& tasks) {
    for (;;) {
      tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
      socket.set_option(tcp::no_delay(true));
      auto s = std::make_shared<session>(std::move(socket), executor);
      sessions.insert(s);
      auto self = shared_from_this();  // named: GCC 12 (DESIGN §9)
      auto client = serve(std::move(self), s);
      if (!co_await tasks.spawn(std::move(client))) {
        sessions.erase(s);
        co_return;
      }
    }
  }

  static asio::awaitable<void> serve(std::shared_ptr<impl> self, std::shared_ptr<session> s) {
    try {
      co_await self->serve_client(s);
    } catch (const std::exception& e) {
      CORVO_LOG(debug, "live_fanout") << "client of room '" << s->room << "' ended: " << e.what();
    }
    s->close();
    self->sessions.erase(s);
    if (!s->room.empty()) {
      auto& members = self->rooms.at(s->room).sessions;
      std::erase(members, s);
    }
  }

  asio::awaitable<void> serve_client(std::shared_ptr<session> s) {
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    co_await http::async_read(s->ws.next_layer(), buffer, request, asio::use_awaitable);
    const std::string target(request.target());
    if (!websocket::is_upgrade(request)) {
      co_await answer_http(*s, request, target);
      co_return;
    }
    const std::string prefix = "/rooms/";
    const std::string name =
        target.substr(0, prefix.size()) == prefix ? target.substr(prefix.size()) : std::string();
    if (!valid_room_name(name)) {
      http::response<http::string_body> refusal{http::status::not_found, request.version()};
      refusal.body() = "join /rooms/NAME (NAME: letters, digits, - and _)\n";
      refusal.prepare_payload();
      co_await http::async_write(s->ws.next_layer(), refusal, asio::use_awaitable);
      co_return;
    }
    ++counters.joining;
    try {
      co_await ensure_subscribed(name);
    } catch (...) {
      --counters.joining;
      throw;
    }
    --counters.joining;
    // In the room before the joined frame: whatever arrives from now on is queued behind it.
    s->room = name;
    rooms.try_emplace(name).first->second.sessions.push_back(s);
    ++counters.joined;
    co_await s->ws.async_accept(request, asio::use_awaitable);
    s->ws.text(true);
    const std::string joined = json::serialize(json::object{{"joined", name}});
    co_await s->ws.async_write(asio::buffer(joined), asio::use_awaitable);
    co_await (read_frames(s) || write_frames(s));
  }

  // Clients only listen; reading keeps the control frames (ping, close) answered.
  static asio::awaitable<void> read_frames(std::shared_ptr<session> s) {
    beast::flat_buffer buffer;
    boost::system::error_code ec;
    while (!ec) {
      std::tie(ec, std::ignore) =
          co_await s->ws.async_read(buffer, asio::as_tuple(asio::use_awaitable));
      buffer.consume(buffer.size());
    }
  }

  asio::awaitable<void> write_frames(std::shared_ptr<session> s) {
    for (;;) {
      while (s->outbox.empty() && !s->closed) {
        co_await s->wake.wait();
      }
      if (s->closed) {
        co_return;
      }
      // Taken off the outbox before the write: the drop policy never drops a frame that is
      // being written.
      const auto frame = s->outbox.front();
      s->outbox.pop_front();
      auto [ec, n] =
          co_await s->ws.async_write(asio::buffer(*frame), asio::as_tuple(asio::use_awaitable));
      if (ec) {
        co_return;
      }
      ++counters.written;
    }
  }

  asio::awaitable<void> answer_http(session& s, const http::request<http::string_body>& request,
                                    const std::string& target) {
    http::response<http::string_body> response{http::status::ok, request.version()};
    if (target == "/stats") {
      response.set(http::field::content_type, "application/json");
      response.body() = stats_json();
    } else {
      response.result(http::status::not_found);
      response.body() = "GET /stats, or a WebSocket to /rooms/NAME\n";
    }
    response.keep_alive(false);
    response.prepare_payload();
    co_await http::async_write(s.ws.next_layer(), response, asio::use_awaitable);
  }

  // ---- shutdown --------------------------------------------------------------------------

  // A child that waits until the group is cancelled, then closes what would not notice a
  // cancellation by itself: the listener and the client sockets.
  asio::awaitable<void> close_on_cancel() {
    corvo::notifier never(executor);
    try {
      co_await never.wait();
    } catch (...) {
    }
    boost::system::error_code ignored;
    acceptor.close(ignored);
    for (const auto& s : sessions) {
      s->close();
    }
  }

  fanout_stats stats() const {
    fanout_stats out = counters;
    out.clients = 0;
    out.rooms = 0;
    for (const auto& [name, room] : rooms) {
      out.clients += room.sessions.size();
      out.rooms += room.sessions.empty() ? 0 : 1;
    }
    out.subscriber = active ? active->stats() : pubsub::subscriber_stats{};
    out.subscriber.received += finished_subscribers.received;
    out.subscriber.delivered += finished_subscribers.delivered;
    out.subscriber.dropped += finished_subscribers.dropped;
    out.subscriber.resubscriptions += finished_subscribers.resubscriptions;
    out.subscriber.refused += finished_subscribers.refused;
    return out;
  }

  std::string stats_json() const {
    const auto s = stats();
    json::object sub = {{"received", s.subscriber.received},
                        {"delivered", s.subscriber.delivered},
                        {"dropped", s.subscriber.dropped},
                        {"resubscriptions", s.subscriber.resubscriptions},
                        {"buffered", s.subscriber.buffered}};
    json::object out = {{"subscription", to_string(options.subscription)},
                        {"slow_policy", to_string(options.policy)},
                        {"client_queue", options.client_queue},
                        {"clients", s.clients},
                        {"joining", s.joining},
                        {"rooms", s.rooms},
                        {"joined", s.joined},
                        {"routed", s.routed},
                        {"unroutable", s.unroutable},
                        {"queued", s.queued},
                        {"written", s.written},
                        {"dropped", s.dropped},
                        {"slow_disconnects", s.slow_disconnects},
                        {"subscriber_runs", s.subscriber_runs},
                        {"subscriber", sub}};
    if (supervision != nullptr) {
      out["supervision"] = {{"state", std::string(corvo::health::to_string(supervision->state()))},
                            {"starts", supervision->stats().starts},
                            {"stops", supervision->stats().stops},
                            {"failures", supervision->stats().failures},
                            {"stop_overruns", supervision->stats().stop_overruns}};
    }
    return json::serialize(out);
  }
};

fanout_server::fanout_server(asio::any_io_executor executor, corvo::redis::client_config redis,
                             fanout_options options, pubsub::subscriber_options subscriber)
    : impl_(std::make_shared<impl>(executor, std::move(redis), std::move(options), subscriber)) {}

fanout_server::~fanout_server() = default;

std::uint16_t fanout_server::port() const noexcept {
  boost::system::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

const fanout_options& fanout_server::options() const noexcept {
  return impl_->options;
}

namespace {
asio::awaitable<void> logged(const char* what, asio::awaitable<void> body) {
  try {
    co_await std::move(body);
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::operation_aborted &&
        e.code() != pubsub::error::subscriber_stopped) {
      CORVO_LOG(error, "live_fanout") << what << " failed: " << e.what();
      throw;
    }
  }
}
}  // namespace

asio::awaitable<void> fanout_server::serve_clients() {
  auto self = impl_;
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group tasks(ex);
  co_await tasks.spawn(self->close_on_cancel());
  co_await tasks.spawn(logged("listener", self->accept(tasks)));
  co_await tasks.join();
}

asio::awaitable<void> fanout_server::run_subscriber() {
  co_await impl::run_subscriber(impl_);
}

asio::awaitable<void> fanout_server::run() {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group tasks(ex);
  co_await tasks.spawn(logged("websocket", serve_clients()));
  co_await tasks.spawn(logged("subscriber", run_subscriber()));
  co_await tasks.join();
}

void fanout_server::add_to(corvo::health::app& app, corvo::health::dependency redis) {
  app.add_service("websocket", [this] { return serve_clients(); });
  app.add_component({"subscriber", [this] { return run_subscriber(); }}, {redis});
  impl_->supervision = &app.supervision_of("subscriber");
}

fanout_stats fanout_server::stats() const {
  return impl_->stats();
}

std::string fanout_server::stats_json() const {
  return impl_->stats_json();
}

}  // namespace live_fanout
