#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <corvo/core/backoff.hpp>
#include <corvo/core/detail/complete_later.hpp>
#include <corvo/core/exception.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/redis/connection.hpp>
#include <corvo/redis/resp3/framer.hpp>
#include <cstring>
#include <deque>
#include <set>
#include <variant>

namespace corvo::redis {

namespace {

using boost::system::error_code;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using push_channel = asio::experimental::channel<void(error_code, generic_response)>;

constexpr std::size_t min_read_space = 16 * 1024;

// A request between exec() and its completion.
struct pending {
  pending() = default;
  // The handler is move-constructed, never move-assigned: any_completion_handler's move
  // assignment in Boost 1.81 copies from an lvalue and recurses without end.
  explicit pending(connection::exec_handler h) : handler(std::move(h)) {}

  const request* req = nullptr;
  any_adapter adapter;
  connection::exec_handler handler;  // empty for internal requests
  std::size_t expected = 0;          // ordinary replies (the adapter's slots)
  std::size_t received = 0;
  // Copied from the request (which may be gone once an abandoned request is answered):
  // how each command is answered when the request subscribes, and its block time.
  std::vector<command_replies> plan;
  std::size_t command = 0;             // with a plan: the command awaiting its answer
  std::size_t confirmations_left = 0;  // of plan[command], counted from its first push
  std::chrono::milliseconds block_time{0};
  clock_type::time_point started{};  // exec(): the request's latency counts from here
  std::size_t bytes = 0;
  error_code first_error;
  bool written = false;
  bool abandoned = false;  // cancelled after being written: its replies are discarded
  bool done = false;
};
using pending_ptr = std::shared_ptr<pending>;

bool is_request_timeout(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& ex) {
    return ex.code() == error::request_timeout;
  } catch (...) {
    return false;
  }
}

bool is_auth_refusal(std::string_view text) {
  return text.starts_with("WRONGPASS") || text.starts_with("NOPERM") ||
         text.starts_with("NOAUTH") || text.find("invalid password") != std::string_view::npos ||
         text.find("invalid username-password") != std::string_view::npos;
}

}  // namespace

struct connection::impl : std::enable_shared_from_this<impl> {
  impl(executor_type ex, config c)
      : executor(std::move(ex)),
        cfg(std::move(c)),
        resolver(executor),
        write_wakeup(executor),
        retry_timer(executor),
        watchdog(executor),
        pushes(executor, cfg.push_capacity),
        framer(cfg.limits) {
    write_wakeup.expires_at(clock_type::time_point::max());
    if (cfg.use_tls) {
      ssl_context.emplace(asio::ssl::context::tls_client);
      configure_tls();
    }
  }

  enum class state { idle, connecting, connected, stopped };

  executor_type executor;
  config cfg;
  // TLS only (cfg.use_tls): a plain connection creates no OpenSSL context or session.
  std::optional<asio::ssl::context> ssl_context;
  tcp::resolver resolver;
  std::optional<tcp::socket> plain;                   // the connection, without TLS
  std::optional<asio::ssl::stream<tcp::socket>> tls;  // the connection, with TLS
  asio::steady_timer write_wakeup;
  asio::steady_timer retry_timer;
  asio::steady_timer watchdog;  // the reply deadline of the request at the head
  push_channel pushes;
  push_sink sink;               // when set, pushes go here instead of `pushes`
  generic_response push_nodes;  // the push being read
  resp3::framer framer;

  state current = state::idle;
  bool run_started = false;
  bool stop_requested = false;
  // Set by reset() while connected: the loss that follows is the owner's, not the server's.
  std::string reset_reason;
  bool reset_pending = false;
  error_code stop_reason;  // what waiting requests fail with once stopped

  std::deque<pending_ptr> to_write;
  std::deque<pending_ptr> in_flight;  // written, awaiting replies, in wire order
  // Over config::max_queued_requests: waiting for room, in arrival order, not yet counted.
  std::deque<pending_ptr> waiting_room;
  // The last sign of life while requests are in flight: a reply (or confirmation), or the
  // write that made in_flight non-empty. The reply deadline counts from it.
  clock_type::time_point progress_at = clock_type::now();
  std::string write_buffer;
  std::string read_buffer;
  std::size_t read_begin = 0;  // unconsumed bytes are [read_begin, read_end)
  std::size_t read_end = 0;
  clock_type::time_point last_read = clock_type::now();

  // Subscriptions confirmed by the server, restored after a reconnect.
  std::set<std::string> channels, patterns, shard_channels;
  request resubscribe;

  connection_stats stats;

  // ---- TLS -------------------------------------------------------------------------------

  void configure_tls() {
    if (!cfg.tls_ca_file.empty()) {
      ssl_context->load_verify_file(cfg.tls_ca_file);
    } else {
      ssl_context->set_default_verify_paths();
    }
    if (!cfg.tls_cert_file.empty()) {
      ssl_context->use_certificate_chain_file(cfg.tls_cert_file);
    }
    if (!cfg.tls_key_file.empty()) {
      ssl_context->use_private_key_file(cfg.tls_key_file, asio::ssl::context::pem);
    }
    ssl_context->set_verify_mode(cfg.tls_verify ? asio::ssl::verify_peer : asio::ssl::verify_none);
  }

  // The TCP socket of the current (or last) connection; null before the first.
  tcp::socket* transport() {
    if (tls) {
      return &tls->next_layer();
    }
    return plain ? &*plain : nullptr;
  }

  void close_transport() {
    if (tcp::socket* socket = transport()) {
      error_code ignored;
      socket->close(ignored);
    }
  }

  // ---- requests --------------------------------------------------------------------------

  // `answered_at`: when a successful request got its last reply (the read that brought it).
  void complete(const pending_ptr& p, error_code ec,
                clock_type::time_point answered_at = clock_type::time_point{}) {
    if (p->done) {
      return;
    }
    p->done = true;
    if (!p->handler) {
      return;
    }
    auto slot = asio::get_associated_cancellation_slot(p->handler);
    if (slot.is_connected()) {
      slot.clear();
    }
    if (!ec) {
      ++stats.requests;
      const auto end = answered_at == clock_type::time_point{} ? clock_type::now() : answered_at;
      record_latency(end - p->started);
    } else if (ec != asio::error::operation_aborted) {
      ++stats.request_errors;
    }
    corvo::detail::complete_later(executor, std::move(p->handler), ec, p->bytes);
  }

  void record_latency(clock_type::duration took) {
    const auto us = std::max(std::chrono::duration_cast<std::chrono::microseconds>(took),
                             std::chrono::microseconds(0));
    std::size_t bucket = 0;
    while (bucket < request_latency_bounds.size() && us > request_latency_bounds[bucket]) {
      ++bucket;
    }
    ++stats.latency_counts[bucket];
    stats.latency_sum += us;
  }

  void start_exec(const request& req, any_adapter resp, exec_handler handler) {
    auto p = std::make_shared<pending>(std::move(handler));
    p->started = clock_type::now();
    p->req = &req;
    p->adapter = resp;
    p->expected = req.expected_responses();
    p->plan = req.reply_plan();
    p->block_time = req.block_time();

    if (current == state::stopped) {
      return complete(p, stop_reason ? stop_reason : error_code{error::connection_closed});
    }
    if (p->expected > resp.size()) {
      return complete(p, error::response_too_small);
    }
    if (cfg.role == connection_role::shared && req.has_blocking_command()) {
      return complete(p, error::blocking_on_shared_connection);
    }
    if (current != state::connected && req.get_config().fail_if_not_connected) {
      return complete(p, error::not_connected);
    }
    auto slot = asio::get_associated_cancellation_slot(p->handler);
    if (slot.is_connected()) {
      slot.assign([weak = weak_from_this(), p](asio::cancellation_type type) {
        if (auto self = weak.lock()) {
          self->cancel_request(p, type);
        }
      });
    }
    if (cfg.max_queued_requests != 0 &&
        (!waiting_room.empty() || queued() >= cfg.max_queued_requests)) {
      ++stats.waits_for_room;
      waiting_room.push_back(std::move(p));
      return;
    }
    to_write.push_back(std::move(p));
    write_wakeup.cancel();
  }

  std::size_t queued() const noexcept { return to_write.size() + in_flight.size(); }

  // Moves requests waiting for room into the write queue while there is room.
  void admit() {
    bool moved = false;
    while (!waiting_room.empty() &&
           (cfg.max_queued_requests == 0 || queued() < cfg.max_queued_requests)) {
      to_write.push_back(std::move(waiting_room.front()));
      waiting_room.pop_front();
      moved = true;
    }
    if (moved) {
      write_wakeup.cancel();
    }
  }

  void cancel_request(const pending_ptr& p, asio::cancellation_type type) {
    if (p->done) {
      return;
    }
    if (!p->written) {
      std::erase(to_write, p);
      std::erase(waiting_room, p);
      admit();
    } else if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::partial)) ==
               asio::cancellation_type::none) {
      return;  // total cancellation cannot undo a written request
    } else {
      // Keep it in in_flight so its replies are consumed in order, but stop writing into
      // the caller's response, which may go away now.
      p->abandoned = true;
      p->adapter = ignore;
    }
    // No slot.clear() here: this runs inside the slot's handler.
    p->done = true;
    corvo::detail::complete_later(executor, std::move(p->handler),
                                  error_code{asio::error::operation_aborted}, p->bytes);
  }

  // ---- reading ---------------------------------------------------------------------------

  std::string_view unread() const {
    return {read_buffer.data() + read_begin, read_end - read_begin};
  }

  asio::awaitable<std::size_t> read_some() {
    if (read_begin == read_end) {
      read_begin = read_end = 0;
    } else if (read_begin > read_buffer.size() / 2) {
      std::memmove(read_buffer.data(), read_buffer.data() + read_begin, read_end - read_begin);
      read_end -= read_begin;
      read_begin = 0;
    }
    if (read_buffer.size() - read_end < min_read_space) {
      read_buffer.resize(std::max(read_buffer.size() * 2, read_end + min_read_space));
    }
    auto space = asio::buffer(read_buffer.data() + read_end, read_buffer.size() - read_end);
    const std::size_t n = cfg.use_tls ? co_await tls->async_read_some(space, asio::use_awaitable)
                                      : co_await plain->async_read_some(space, asio::use_awaitable);
    read_end += n;
    last_read = clock_type::now();
    co_return n;
  }

  // The next complete message; its bytes stay valid until consume() is called.
  asio::awaitable<resp3::message> read_message() {
    for (;;) {
      error_code ec;
      if (auto message = framer.next(unread(), ec)) {
        co_return *message;
      }
      if (ec) {
        throw boost::system::system_error(ec, "redis protocol");
      }
      co_await read_some();
    }
  }

  void consume(std::size_t n) { read_begin += n; }

  void deliver_reply(const resp3::message& message) {
    ++stats.replies;
    if (in_flight.empty()) {
      throw boost::system::system_error(error::unexpected_reply,
                                        "a reply arrived with no request waiting for it");
    }
    progress_at = clock_type::now();
    auto& p = in_flight.front();
    p->bytes += message.size();
    if (!p->plan.empty() && !p->plan[p->command].confirmation.empty()) {
      // An ordinary reply where a subscribe-family command expects pushes: the server
      // refused the command. It is its only answer; the pipeline goes on after it.
      refuse_subscription(*p, message);
      ++p->command;
      p->confirmations_left = 0;
    } else {
      if (!p->abandoned) {
        error_code ec;
        p->adapter.deliver(p->received, message.data, ec);
        if (ec && !p->first_error) {
          p->first_error = ec;
        }
      }
      ++p->received;
      if (!p->plan.empty()) {
        ++p->command;
      }
    }
    finish_front_if_answered();
  }

  // Completes the request at the head of in_flight once every command has its answer.
  void finish_front_if_answered() {
    auto& p = in_flight.front();
    const bool answered =
        p->plan.empty() ? p->received == p->expected : p->command == p->plan.size();
    if (answered) {
      auto finished = std::move(p);
      in_flight.pop_front();
      complete(finished, finished->first_error, last_read);
      admit();
    }
  }

  void refuse_subscription(pending& p, const resp3::message& message) {
    generic_response nodes;
    error_code ec;
    adapt(message.data, nodes, ec);
    if (ec || nodes.empty() || !resp3::is_error(nodes.front().data_type)) {
      throw boost::system::system_error(error::unexpected_reply,
                                        "a subscribe command got a reply that is not an error");
    }
    ++stats.subscriptions_refused;
    std::string command(p.plan[p.command].confirmation);
    std::transform(command.begin(), command.end(), command.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    CORVO_LOG(warning, "redis") << command << " refused by " << cfg.address() << ": "
                                << nodes.front().value;
    if (!p.first_error) {
      p.first_error = error::subscription_refused;
    }
  }

  // A subscribe-family push: when it confirms the command at the head, counts it.
  void confirm_subscription(const generic_response& nodes) {
    if (in_flight.empty() || nodes.size() < 2) {
      return;
    }
    auto& p = in_flight.front();
    if (p->plan.empty() || p->command >= p->plan.size()) {
      return;
    }
    const auto& step = p->plan[p->command];
    if (step.confirmation.empty() || nodes[1].value != step.confirmation) {
      return;  // a message, or a confirmation nobody asked for (e.g. a slot migration)
    }
    progress_at = clock_type::now();
    if (p->confirmations_left == 0) {
      // Counted before track_subscription() sees this push: the sets are those the
      // server had when it started on the command.
      p->confirmations_left =
          step.count != 0 ? step.count : std::max<std::size_t>(1, subscriptions_of(step).size());
    }
    if (--p->confirmations_left == 0) {
      ++p->command;
      finish_front_if_answered();
    }
  }

  const std::set<std::string>& subscriptions_of(const command_replies& step) const {
    const std::string_view kind = step.confirmation;
    if (kind.ends_with("ssubscribe")) {  // ssubscribe, sunsubscribe
      return shard_channels;
    }
    if (kind.starts_with("p")) {  // psubscribe, punsubscribe
      return patterns;
    }
    return channels;
  }

  void track_subscription(const generic_response& nodes) {
    if (nodes.size() < 3) {
      return;
    }
    const std::string& kind = nodes[1].value;
    const std::string& name = nodes[2].value;
    if (kind == "subscribe")
      channels.insert(name);
    else if (kind == "psubscribe")
      patterns.insert(name);
    else if (kind == "ssubscribe")
      shard_channels.insert(name);
    else if (kind == "unsubscribe")
      channels.erase(name);
    else if (kind == "punsubscribe")
      patterns.erase(name);
    else if (kind == "sunsubscribe")
      shard_channels.erase(name);
  }

  asio::awaitable<void> reader() {
    for (;;) {
      const auto message = co_await read_message();
      if (message.is_push()) {
        ++stats.pushes;
        generic_response& nodes = push_nodes;  // reused: no allocation of the vector per push
        nodes.clear();
        error_code ec;
        adapt(message.data, nodes, ec);
        consume(message.size());
        if (ec) {
          throw boost::system::system_error(ec, "redis push");
        }
        confirm_subscription(nodes);
        track_subscription(nodes);
        if (sink) {
          sink(std::move(nodes));
          continue;
        }
        // Straight to a waiting receiver or into the buffer without suspending the reader
        // (async_send would cost a round trip through the scheduler per push); wait for
        // room only when the buffer is full.
        if (!pushes.try_send(error_code{}, std::move(nodes))) {
          co_await pushes.async_send(error_code{}, std::move(nodes), asio::use_awaitable);
        }
      } else {
        deliver_reply(message);
        consume(message.size());
      }
    }
  }

  // ---- writing ---------------------------------------------------------------------------

  asio::awaitable<void> writer() {
    for (;;) {
      // After reset() nothing more is written: the socket is closed and the requests queued
      // since then wait for the next connection (or fail as unwritten ones do).
      while (to_write.empty() || reset_pending) {
        error_code ignored;
        co_await write_wakeup.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      }
      // Everything queued since the last write goes out in one write.
      write_buffer.clear();
      std::vector<pending_ptr> without_replies;
      if (in_flight.empty()) {
        progress_at = clock_type::now();
        watchdog.cancel();  // a deadline starts now
      }
      while (!to_write.empty()) {
        auto p = std::move(to_write.front());
        to_write.pop_front();
        write_buffer.append(p->req->payload());
        p->written = true;
        if (p->expected == 0 && p->plan.empty()) {
          without_replies.push_back(std::move(p));
        } else {
          in_flight.push_back(std::move(p));
        }
      }
      ++stats.writes;
      if (cfg.use_tls) {
        co_await asio::async_write(*tls, asio::buffer(write_buffer), asio::use_awaitable);
      } else {
        co_await asio::async_write(*plain, asio::buffer(write_buffer), asio::use_awaitable);
      }
      const auto written_at = clock_type::now();
      for (auto& p : without_replies) {
        complete(p, {}, written_at);
      }
    }
  }

  // ---- reply deadline --------------------------------------------------------------------

  // While requests are in flight, the next reply must come within request_timeout (plus
  // the block time of the request at the head) of the last progress; else the server is
  // taken for hung and the connection for lost. One timer for the whole connection: replies
  // come in order, so only the head can be late.
  asio::awaitable<void> reply_watchdog() {
    for (;;) {
      auto deadline = clock_type::time_point::max();
      if (cfg.request_timeout.count() > 0 && !in_flight.empty()) {
        const auto block = in_flight.front()->block_time;
        if (block != std::chrono::milliseconds::max()) {
          deadline = progress_at + cfg.request_timeout + block;
        }
      }
      if (clock_type::now() >= deadline) {
        ++stats.request_timeouts;
        throw boost::system::system_error(error::request_timeout,
                                          "no reply from " + cfg.address() + " within " +
                                              std::to_string(cfg.request_timeout.count()) + " ms");
      }
      watchdog.expires_at(deadline);
      error_code ignored;
      co_await watchdog.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
  }

  // ---- health check ----------------------------------------------------------------------

  asio::awaitable<void> health_checker() {
    const auto interval = cfg.health_check_interval;
    asio::steady_timer timer(executor);
    if (interval.count() == 0) {
      timer.expires_at(clock_type::time_point::max());
      co_await timer.async_wait(asio::use_awaitable);
    }
    request ping(request::config{.idempotent = true, .fail_if_not_connected = true});
    ping.push("PING", "corvo-health");
    for (;;) {
      timer.expires_after(interval);
      co_await timer.async_wait(asio::use_awaitable);
      // Only an idle connection is probed: a busy one (or one blocked in BLMOVE on purpose)
      // proves itself by its replies, and a PING would queue behind a blocking command.
      if (!in_flight.empty() || !to_write.empty() || !waiting_room.empty() ||
          clock_type::now() - last_read < interval) {
        continue;
      }
      try {
        co_await with_timeout(exec_internal(ping), interval);
      } catch (const boost::system::system_error& e) {
        if (e.code() != corvo::error::timed_out) {
          throw;
        }
        ++stats.health_check_failures;
        throw boost::system::system_error(error::health_check_timeout, "redis health check");
      }
    }
  }

  asio::awaitable<std::size_t> exec_internal(const request& req) {
    struct initiation {
      impl* self;
      const request* req;
      void operator()(exec_handler handler) const {
        self->start_exec(*req, ignore, std::move(handler));
      }
    };
    initiation init{this, &req};
    return asio::async_initiate<decltype(asio::use_awaitable), void(error_code, std::size_t)>(
        init, asio::use_awaitable);
  }

  // ---- connecting ------------------------------------------------------------------------

  request make_handshake() const {
    request hello;
    if (!cfg.password.empty()) {
      const std::string& user = cfg.username.empty() ? std::string("default") : cfg.username;
      if (!cfg.client_name.empty()) {
        hello.push("HELLO", "3", "AUTH", user, cfg.password, "SETNAME", cfg.client_name);
      } else {
        hello.push("HELLO", "3", "AUTH", user, cfg.password);
      }
    } else if (!cfg.client_name.empty()) {
      hello.push("HELLO", "3", "SETNAME", cfg.client_name);
    } else {
      hello.push("HELLO", "3");
    }
    if (cfg.database != 0) {
      hello.push("SELECT", cfg.database);
    }
    return hello;
  }

  asio::awaitable<void> connect_and_handshake() {
    auto endpoints = co_await resolver.async_resolve(cfg.host, cfg.port, asio::use_awaitable);
    tcp::socket* socket = nullptr;
    if (cfg.use_tls) {
      tls.emplace(executor, *ssl_context);
      socket = &tls->next_layer();
    } else {
      plain.emplace(executor);
      socket = &*plain;
    }
    co_await asio::async_connect(*socket, endpoints, asio::use_awaitable);
    socket->set_option(tcp::no_delay(true));
    if (cfg.use_tls) {
      const std::string& name = cfg.tls_server_name.empty() ? cfg.host : cfg.tls_server_name;
      if (!SSL_set_tlsext_host_name(tls->native_handle(), name.c_str())) {
        throw boost::system::system_error(
            error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()),
            "redis TLS server name");
      }
      if (cfg.tls_verify) {
        tls->set_verify_callback(asio::ssl::host_name_verification(name));
      }
      co_await tls->async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    }

    // The handshake runs before the reader and writer start, so its replies are read here.
    framer.reset();
    read_begin = read_end = 0;
    const request hello = make_handshake();
    if (cfg.use_tls) {
      co_await asio::async_write(*tls, asio::buffer(hello.payload()), asio::use_awaitable);
    } else {
      co_await asio::async_write(*plain, asio::buffer(hello.payload()), asio::use_awaitable);
    }
    for (std::size_t i = 0; i < hello.expected_responses(); ++i) {
      const auto message = co_await read_message();
      generic_response nodes;
      error_code ec;
      adapt(message.data, nodes, ec);
      consume(message.size());
      if (ec) {
        throw boost::system::system_error(ec, "redis handshake");
      }
      if (message.is_push()) {  // e.g. a stray invalidation; not part of the handshake
        --i;
        continue;
      }
      if (!nodes.empty() && resp3::is_error(nodes.front().data_type)) {
        const auto& text = nodes.front().value;
        throw boost::system::system_error(
            is_auth_refusal(text) ? error::auth_failed : error::handshake_failed, text);
      }
    }
  }

  // Re-issues the subscriptions the server had confirmed before the connection was lost.
  void queue_resubscribe() {
    resubscribe.clear();
    auto add = [this](std::string_view command, const std::set<std::string>& names) {
      if (!names.empty()) {
        resubscribe.push(command, names);
      }
    };
    add("SUBSCRIBE", channels);
    add("PSUBSCRIBE", patterns);
    add("SSUBSCRIBE", shard_channels);
    if (resubscribe.size() == 0) {
      return;
    }
    auto p = std::make_shared<pending>();
    p->req = &resubscribe;
    p->expected = resubscribe.expected_responses();
    p->plan = resubscribe.reply_plan();
    to_write.push_front(std::move(p));
  }

  // After a loss: written requests fail (or are re-queued when idempotent and untouched);
  // unwritten ones wait for the reconnection unless they asked not to.
  // A missed reply deadline (`error::request_timeout`) or a reset by the owner
  // (`error::connection_reset`) fails every written request with that error, idempotent or
  // not: each has had its time, and the server is taken for hung.
  void on_connection_lost(error_code written_fail_with = {}) {
    close_transport();
    std::deque<pending_ptr> requeue;
    for (auto& p : in_flight) {
      if (p->done) {
        continue;  // abandoned: nobody waits for it
      }
      if (written_fail_with) {
        complete(p, written_fail_with);
      } else if (p->handler && p->req->get_config().idempotent && p->received == 0 &&
                 p->command == 0) {
        p->written = false;
        p->bytes = 0;
        p->confirmations_left = 0;
        requeue.push_back(p);
      } else {
        complete(p, error::connection_lost);
      }
    }
    in_flight.clear();
    const auto drop = [this](const pending_ptr& p) {
      if (!p->handler) {
        return true;  // an internal request (re-subscribe) is rebuilt on reconnect
      }
      if (p->req->get_config().fail_if_not_connected) {
        complete(p, error::not_connected);
        return true;
      }
      return false;
    };
    std::erase_if(to_write, drop);
    std::erase_if(waiting_room, drop);
    to_write.insert(to_write.begin(), requeue.begin(), requeue.end());
    admit();
  }

  // Fails everything and refuses further requests.
  void stop(error_code reason) {
    current = state::stopped;
    stop_reason = reason;
    close_transport();
    for (auto& p : in_flight) {
      // Written: it may have run. Only an idempotent request (or one that was never
      // written) may be taken as "not executed" (the cluster client re-routes those).
      const bool may_have_run = reason == error::connection_closed && !p->done && p->handler &&
                                !p->req->get_config().idempotent;
      complete(p, may_have_run ? error_code{error::connection_lost} : reason);
    }
    for (auto& p : to_write) {
      complete(p, reason);
    }
    for (auto& p : waiting_room) {
      complete(p, reason);
    }
    in_flight.clear();
    to_write.clear();
    waiting_room.clear();
    pushes.close();
  }

  // The owner knows the server stopped answering (a health probe's timeout): drop the
  // connection as a missed reply deadline would. Only an established connection is
  // dropped: one being set up or waiting to reconnect has nothing written to fail, and
  // dropping it would only add a connection attempt.
  void reset(std::string_view reason) {
    if (current != state::connected || stop_requested || reset_pending) {
      return;
    }
    reset_pending = true;
    reset_reason = std::string(reason);
    ++stats.resets;
    // Not connected from now on: a request marked fail_if_not_connected fails at once
    // instead of being written to the closed socket before run() sees the loss.
    current = state::connecting;
    close_transport();  // the reader and writer fail; run() handles the loss
  }

  void request_stop() {
    stop_requested = true;
    resolver.cancel();
    retry_timer.cancel();
    write_wakeup.cancel();
    watchdog.cancel();
    close_transport();
    if (!run_started) {
      stop(error::connection_closed);
    }
  }

  // Runs reader, writer, reply deadline and health check until the first of them ends (they only
  // end by failing), cancels the others and rethrows that failure. Not `||`: it waits for the first
  // *success*, which never comes here.
  asio::awaitable<void> serve() {
    namespace exp = asio::experimental;
    auto [order, read_failure, write_failure, deadline_failure, health_failure] =
        co_await exp::make_parallel_group(
            asio::co_spawn(executor, reader(), asio::deferred),
            asio::co_spawn(executor, writer(), asio::deferred),
            asio::co_spawn(executor, reply_watchdog(), asio::deferred),
            asio::co_spawn(executor, health_checker(), asio::deferred))
            .async_wait(exp::wait_for_one(), asio::use_awaitable);
    const std::exception_ptr failures[] = {read_failure, write_failure, deadline_failure,
                                           health_failure};
    if (failures[order[0]]) {
      std::rethrow_exception(failures[order[0]]);
    }
  }

  asio::awaitable<void> run() {
    if (run_started) {
      throw std::logic_error("redis::connection::run() called twice");
    }
    run_started = true;
    backoff delays(cfg.reconnect_backoff);
    std::exception_ptr ended_by;
    error_code fatal;
    try {
      while (!stop_requested) {
        current = state::connecting;
        std::exception_ptr failure;
        try {
          co_await with_timeout(connect_and_handshake(), cfg.connect_timeout);
        } catch (const boost::system::system_error& e) {
          if (e.code() == error::auth_failed) {
            fatal = e.code();
            throw;
          }
          failure = std::current_exception();
        }
        if (!failure && !stop_requested) {
          ++stats.connects;
          delays.reset();
          current = state::connected;
          CORVO_LOG(info, "redis") << "connected to " << cfg.address();
          queue_resubscribe();
          try {
            co_await serve();
          } catch (...) {
            failure = std::current_exception();
          }
          current = state::connecting;
          const bool was_reset = std::exchange(reset_pending, false);
          error_code written_fail_with;
          if (failure && is_request_timeout(failure)) {
            written_fail_with = error::request_timeout;
          } else if (was_reset && !stop_requested) {
            written_fail_with = error::connection_reset;
          }
          if (stop_requested || (failure && is_operation_aborted(failure) && !was_reset)) {
            CORVO_LOG(info, "redis") << "connection to " << cfg.address() << " closed";
          } else if (written_fail_with == error::connection_reset) {
            CORVO_LOG(warning, "redis")
                << "connection to " << cfg.address() << " reset: " << reset_reason;
          } else {
            CORVO_LOG(warning, "redis")
                << "connection to " << cfg.address() << " lost: " << describe(failure);
          }
          on_connection_lost(written_fail_with);
        } else if (failure) {
          ++stats.connect_failures;
          on_connection_lost();
          CORVO_LOG(warning, "redis")
              << "cannot connect to " << cfg.address() << ": " << describe(failure);
        }
        if (stop_requested) {
          break;
        }
        retry_timer.expires_after(delays.next());
        error_code ignored;
        co_await retry_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      }
    } catch (...) {
      ended_by = std::current_exception();
    }
    stop(fatal ? fatal : error_code{error::connection_closed});
    if (fatal) {
      CORVO_LOG(error, "redis") << "giving up on " << cfg.address() << ": " << describe(ended_by);
    }
    if (ended_by) {
      std::rethrow_exception(ended_by);
    }
  }
};

connection::connection(executor_type executor, config cfg)
    : impl_(std::make_shared<impl>(std::move(executor), std::move(cfg))) {}

connection::~connection() {
  impl_->request_stop();
  if (impl_->current != impl::state::stopped) {
    impl_->stop(error::connection_closed);
  }
}

connection::executor_type connection::get_executor() const noexcept {
  return impl_->executor;
}

const config& connection::get_config() const noexcept {
  return impl_->cfg;
}

asio::awaitable<void> connection::run() {
  auto self = impl_;  // the run outlives nothing it needs
  co_await self->run();
}

void connection::cancel() {
  impl_->request_stop();
}

void connection::reset(std::string_view reason) {
  impl_->reset(reason);
}

bool connection::is_connected() const noexcept {
  return impl_->current == impl::state::connected;
}

const connection_stats& connection::stats() const noexcept {
  return impl_->stats;
}

connection_stats& connection_stats::operator+=(const connection_stats& other) noexcept {
  connects += other.connects;
  connect_failures += other.connect_failures;
  writes += other.writes;
  requests += other.requests;
  replies += other.replies;
  pushes += other.pushes;
  health_check_failures += other.health_check_failures;
  request_timeouts += other.request_timeouts;
  resets += other.resets;
  subscriptions_refused += other.subscriptions_refused;
  waits_for_room += other.waits_for_room;
  request_errors += other.request_errors;
  for (std::size_t i = 0; i < latency_counts.size(); ++i) {
    latency_counts[i] += other.latency_counts[i];
  }
  latency_sum += other.latency_sum;
  return *this;
}

std::size_t connection::queued_requests() const noexcept {
  return impl_->queued();
}

std::chrono::steady_clock::duration connection::reply_wait() const noexcept {
  if (impl_->in_flight.empty()) {
    return std::chrono::steady_clock::duration::zero();
  }
  return clock_type::now() - impl_->progress_at;
}

void connection::start_exec(const request& req, any_adapter resp, exec_handler handler) {
  impl_->start_exec(req, resp, std::move(handler));
}

void connection::set_push_sink(push_sink sink) {
  impl_->sink = std::move(sink);
}

void connection::start_receive(push_handler handler, bool same_executor) {
  // The channel cannot complete an any_completion_handler directly in Asio 1.26 (it needs
  // blocking.never from the handler's executor), so receive with a plain handler that
  // carries the caller's cancellation slot. The channel always posts that handler on this
  // connection's executor (never runs it inside async_receive): a caller on the same
  // executor is completed right there, without a second scheduler hop per push; any other
  // caller hops to its own executor. A cancelled receive reports channel_cancelled; callers
  // get the usual operation_aborted instead.
  auto slot = asio::get_associated_cancellation_slot(handler);
  impl_->pushes.async_receive(asio::bind_cancellation_slot(
      slot, [handler = std::move(handler), ex = impl_->executor, same_executor](
                error_code ec, generic_response push) mutable {
        if (ec == asio::experimental::error::channel_cancelled) {
          ec = asio::error::operation_aborted;
        }
        if (same_executor) {
          std::move(handler)(ec, std::move(push));
          return;
        }
        corvo::detail::complete_later(ex, std::move(handler), ec, std::move(push));
      }));
}

}  // namespace corvo::redis
