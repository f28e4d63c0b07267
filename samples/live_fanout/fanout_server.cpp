#include "fanout_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/serialize.hpp>
#include <corvo/core/log.hpp>
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

// A flag coroutines wait for: a timer that never expires, cancelled to wake the waiters.
struct gate {
  explicit gate(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  bool open = false;

  void set() {
    open = true;
    timer.cancel();
  }
  void wake() { timer.cancel(); }
  asio::awaitable<void> wait_once() {
    timer.expires_at(asio::steady_timer::time_point::max());
    // The error code says nothing more: expired never happens, cancel() means "look again".
    [[maybe_unused]] auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) {
      throw boost::system::system_error(asio::error::operation_aborted);
    }
  }
};

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
  gate wake;
  bool closed = false;

  void close() {
    if (!closed) {
      closed = true;
      boost::system::error_code ignored;
      beast::get_lowest_layer(ws).socket().close(ignored);
      wake.wake();
    }
  }
};

struct room_state {
  explicit room_state(asio::any_io_executor ex) : subscribed(ex) {}
  std::vector<std::shared_ptr<session>> sessions;
  gate subscribed;
  bool subscribing = false;
};

struct fanout_server::impl : std::enable_shared_from_this<impl> {
  impl(asio::any_io_executor ex, corvo::redis::client_config redis, fanout_options o,
       pubsub::subscriber_options sub_options)
      : executor(ex),
        options(std::move(o)),
        subscriber(ex, std::move(redis), sub_options),
        acceptor(ex),
        pattern_subscribed(ex) {
    const tcp::endpoint at(asio::ip::make_address(options.listen_address), options.port);
    acceptor.open(at.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(at);
    acceptor.listen();
  }

  asio::any_io_executor executor;
  fanout_options options;
  pubsub::subscriber subscriber;
  tcp::acceptor acceptor;
  gate pattern_subscribed;
  std::map<std::string, room_state> rooms;
  std::set<std::shared_ptr<session>> sessions;
  fanout_stats counters;

  // ---- subscriptions ---------------------------------------------------------------------

  asio::awaitable<void> subscribe_pattern() {
    std::vector<std::string> patterns{std::string(room_prefix) + "*"};
    co_await subscriber.psubscribe(patterns);
    pattern_subscribed.set();
  }

  // Returns once the room's messages reach this server.
  asio::awaitable<void> ensure_subscribed(const std::string& name) {
    if (options.subscription == subscription_mode::pattern) {
      while (!pattern_subscribed.open) {
        co_await pattern_subscribed.wait_once();
      }
      co_return;
    }
    auto& room = rooms.try_emplace(name, executor).first->second;
    while (!room.subscribed.open) {
      if (room.subscribing) {
        co_await room.subscribed.wait_once();
        continue;
      }
      room.subscribing = true;
      std::vector<std::string> channels{std::string(room_prefix) + name};
      try {
        if (options.subscription == subscription_mode::channel) {
          co_await subscriber.subscribe(channels);
        } else {
          co_await subscriber.ssubscribe(channels);
        }
      } catch (...) {
        room.subscribing = false;
        room.subscribed.wake();  // another waiter takes over
        throw;
      }
      room.subscribed.set();
    }
  }

  // ---- routing ---------------------------------------------------------------------------

  asio::awaitable<void> route() {
    for (;;) {
      pubsub::message m = co_await subscriber.receive();
      ++counters.routed;
      std::string_view channel = m.channel;
      if (channel.substr(0, room_prefix.size()) != room_prefix) {
        ++counters.unroutable;
        continue;
      }
      const auto it = rooms.find(std::string(channel.substr(room_prefix.size())));
      if (it == rooms.end() || it->second.sessions.empty()) {
        ++counters.unroutable;
        continue;
      }
      // One copy of the payload, shared by every client's outbox.
      const auto frame = std::make_shared<const std::string>(std::move(m.payload));
      for (const auto& s : it->second.sessions) {
        enqueue(*s, frame);
      }
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
    s.wake.wake();
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
    const std::string name = target.substr(0, prefix.size()) == prefix
                                 ? target.substr(prefix.size())
                                 : std::string();
    if (!valid_room_name(name)) {
      http::response<http::string_body> refusal{http::status::not_found, request.version()};
      refusal.body() = "join /rooms/NAME (NAME: letters, digits, - and _)\n";
      refusal.prepare_payload();
      co_await http::async_write(s->ws.next_layer(), refusal, asio::use_awaitable);
      co_return;
    }
    co_await ensure_subscribed(name);
    // In the room before the joined frame: whatever arrives from now on is queued behind it.
    s->room = name;
    rooms.try_emplace(name, executor).first->second.sessions.push_back(s);
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
        co_await s->wake.wait_once();
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
  // cancellation by itself: the listener, the client sockets and the subscriber.
  asio::awaitable<void> close_on_cancel() {
    gate never(executor);
    try {
      co_await never.wait_once();
    } catch (...) {
    }
    boost::system::error_code ignored;
    acceptor.close(ignored);
    for (const auto& s : sessions) {
      s->close();
    }
    subscriber.cancel();
  }

  fanout_stats stats() const {
    fanout_stats out = counters;
    out.clients = 0;
    out.rooms = 0;
    for (const auto& [name, room] : rooms) {
      out.clients += room.sessions.size();
      out.rooms += room.sessions.empty() ? 0 : 1;
    }
    out.subscriber = subscriber.stats();
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
                        {"rooms", s.rooms},
                        {"joined", s.joined},
                        {"routed", s.routed},
                        {"unroutable", s.unroutable},
                        {"queued", s.queued},
                        {"written", s.written},
                        {"dropped", s.dropped},
                        {"slow_disconnects", s.slow_disconnects},
                        {"subscriber", sub}};
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

const fanout_options& fanout_server::options() const noexcept { return impl_->options; }

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

asio::awaitable<void> fanout_server::run() {
  auto self = impl_;
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group tasks(ex);
  co_await tasks.spawn(logged("subscriber", self->subscriber.run()));
  co_await tasks.spawn(self->close_on_cancel());
  if (self->options.subscription == subscription_mode::pattern) {
    co_await tasks.spawn(logged("pattern subscription", self->subscribe_pattern()));
  }
  co_await tasks.spawn(logged("router", self->route()));
  co_await tasks.spawn(logged("listener", self->accept(tasks)));
  co_await tasks.join();
}

fanout_stats fanout_server::stats() const { return impl_->stats(); }

std::string fanout_server::stats_json() const { return impl_->stats_json(); }

}  // namespace live_fanout
