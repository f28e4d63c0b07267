#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <corvo/core/log.hpp>
#include <corvo/core/timeout.hpp>
#include <corvo/redis/cluster/cluster_client.hpp>
#include <corvo/redis/cluster/slot.hpp>
#include <corvo/redis/connection.hpp>
#include <corvo/redis/resp3/serializer.hpp>
#include <map>
#include <optional>
#include <set>

namespace corvo::redis {

namespace {

using boost::system::error_code;
using clock_type = std::chrono::steady_clock;
using push_channel = asio::experimental::channel<void(error_code, generic_response)>;

constexpr std::size_t no_command = static_cast<std::size_t>(-1);  // an ASKING we added

[[noreturn]] void fail(error_code ec, const std::string& what) {
  throw boost::system::system_error(ec, what);
}

// "host:port" or a redis:// URL.
std::pair<std::string, std::string> seed_endpoint(const std::string& seed) {
  if (seed.find("://") != std::string::npos) {
    const auto cfg = config::from_url(seed);
    return {cfg.host, cfg.port};
  }
  const auto colon = seed.rfind(':');
  if (colon == std::string::npos) {
    return {seed, "6379"};
  }
  return {seed.substr(0, colon), seed.substr(colon + 1)};
}

// One past the last node of the subtree at `i`.
std::size_t subtree_end(const generic_response& nodes, std::size_t i) {
  std::size_t j = i + 1;
  while (j < nodes.size() && nodes[j].depth > nodes[i].depth) {
    ++j;
  }
  return j;
}

// One reply inside a generic_response: [begin, end), `root` is its value (after attributes).
struct reply_span {
  std::size_t begin = 0;
  std::size_t end = 0;
  std::size_t root = 0;
};

std::vector<reply_span> split_replies(const generic_response& nodes) {
  std::vector<reply_span> out;
  std::size_t i = 0;
  while (i < nodes.size()) {
    reply_span r;
    r.begin = i;
    while (i < nodes.size() && nodes[i].depth == 0 &&
           nodes[i].data_type == resp3::type::attribute) {
      i = subtree_end(nodes, i);
    }
    if (i >= nodes.size()) {
      break;
    }
    r.root = i;
    i = subtree_end(nodes, i);
    r.end = i;
    out.push_back(r);
  }
  return out;
}

// Writes nodes [begin, end) back as RESP3, as the server sent them (types kept), so a
// caller's adapter can parse them. Attributes and nulls included.
void serialize_reply(const generic_response& nodes, std::size_t begin, std::size_t end,
                     std::string& out) {
  using resp3::type;
  out.clear();
  for (std::size_t i = begin; i < end; ++i) {
    const auto& n = nodes[i];
    switch (n.data_type) {
      case type::array:
      case type::map:
      case type::set:
      case type::attribute:
      case type::push:
        resp3::add_header(out, n.data_type, n.aggregate_size);
        break;
      case type::null:
        out.append("_\r\n", 3);
        break;
      case type::bulk_string:
      case type::bulk_error:
      case type::verbatim_string:
        resp3::add_header(out, n.data_type, n.value.size());
        out.append(n.value);
        out.append("\r\n", 2);
        break;
      default:
        out.push_back(resp3::type_byte(n.data_type));
        out.append(n.value);
        out.append("\r\n", 2);
        break;
    }
  }
}

bool expects_reply(std::string_view command) {
  return detail::classify_command(command) != detail::command_kind::subscribe;
}

// Timers of coroutines waiting for an event; notify_all() wakes them all.
class waiter_list {
 public:
  void add(asio::steady_timer* t) { timers_.push_back(t); }
  void remove(asio::steady_timer* t) { std::erase(timers_, t); }
  void notify_all() {
    for (auto* t : timers_) {
      t->cancel();
    }
  }

 private:
  std::vector<asio::steady_timer*> timers_;
};

struct waiter_guard {
  waiter_list& list;
  asio::steady_timer* timer;
  ~waiter_guard() { list.remove(timer); }
};

// Waits until `list` is notified or `deadline` passes. Cancellation (terminal): throws
// operation_aborted.
asio::awaitable<void> wait_on(waiter_list& list, clock_type::time_point deadline) {
  const auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, deadline);
  list.add(&timer);
  waiter_guard guard{list, &timer};
  error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  const auto state = co_await asio::this_coro::cancellation_state;
  if (state.cancelled() != asio::cancellation_type::none) {
    fail(asio::error::operation_aborted, "redis cluster");
  }
}

asio::awaitable<void> run_connection(std::shared_ptr<connection> conn) {
  co_await conn->run();
}

}  // namespace

// A master (or redirection target) and the connections the client keeps to it.
struct cluster_node_entry {
  cluster_node node;
  std::string address;
  std::shared_ptr<connection> conn;
  std::shared_ptr<connection> subscriber;  // sharded pub/sub, opened on demand
  clock_type::time_point created = clock_type::now();
  bool retired = false;
};

struct cluster_client::impl : std::enable_shared_from_this<impl> {
  impl(executor_type ex, cluster_options o)
      : executor(std::move(ex)),
        opts(std::move(o)),
        wakeup(executor),
        subs_wakeup(executor),
        tasks_done(executor),
        pushes(executor, opts.node.push_capacity) {
    for (const auto& seed : opts.seeds) {
      seeds.push_back(seed_endpoint(seed));
    }
  }

  using node_ptr = std::shared_ptr<cluster_node_entry>;

  executor_type executor;
  cluster_options opts;
  std::vector<std::pair<std::string, std::string>> seeds;

  slot_map map;
  std::map<std::string, node_ptr> nodes;  // by address: masters and redirection targets
  // The counters of the connections of nodes that left `nodes`, by address (node_stats()).
  std::map<std::string, connection_stats> retired_stats;
  std::size_t round_robin = 0;

  bool run_started = false;
  bool stopping = false;
  bool refresh_requested = false;
  clock_type::time_point last_refresh{};
  asio::steady_timer wakeup;  // the maintenance loop
  waiter_list topology_waiters;

  // Sharded pub/sub: desired channel -> address of the node it is subscribed on ("" when
  // it still has to be).
  std::map<std::string, std::string> shard_channels;
  std::set<std::string> ever_subscribed;  // for stats.resubscribed
  // Channels the server refused (NOPERM): dropped from the desired set; the ssubscribe()
  // that asked for them fails with subscription_refused.
  std::set<std::string> refused_channels;
  bool subs_dirty = false;
  std::uint64_t subs_passes_started = 0;
  std::uint64_t subs_passes_done = 0;
  asio::steady_timer subs_wakeup;
  waiter_list subs_waiters;

  std::size_t tasks_running = 0;
  asio::steady_timer tasks_done;
  push_channel pushes;
  connection::push_sink sink;  // when set, node pushes go here instead of `pushes`
  cluster_stats stats;

  // ---- background tasks --------------------------------------------------------------

  struct task_done {
    std::shared_ptr<impl> self;
    const char* what;
    void operator()(std::exception_ptr e) const {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const boost::system::system_error& ex) {
          if (ex.code() != asio::error::operation_aborted) {
            CORVO_LOG(warning, "redis.cluster") << what << " ended: " << ex.what();
          }
        } catch (const std::exception& ex) {
          CORVO_LOG(warning, "redis.cluster") << what << " ended: " << ex.what();
        }
      }
      if (--self->tasks_running == 0) {
        self->tasks_done.cancel();
      }
    }
  };

  void spawn(asio::awaitable<void> task, const char* what) {
    ++tasks_running;
    asio::co_spawn(executor, std::move(task), task_done{shared_from_this(), what});
  }

  static asio::awaitable<void> forward_pushes(std::shared_ptr<impl> self,
                                              std::shared_ptr<connection> conn, std::string address,
                                              bool subscriber) {
    for (;;) {
      auto [ec, push] = co_await conn->async_receive(asio::as_tuple(asio::use_awaitable));
      if (ec) {
        co_return;
      }
      if (subscriber) {
        self->on_subscriber_push(address, push);
      }
      auto [send_ec] = co_await self->pushes.async_send(error_code{}, std::move(push),
                                                        asio::as_tuple(asio::use_awaitable));
      if (send_ec) {
        co_return;
      }
    }
  }

  std::shared_ptr<connection> start_connection(const cluster_node& node, bool subscriber,
                                               const std::string& address) {
    config cfg = opts.node;
    cfg.host = node.host;
    cfg.port = node.port;
    auto conn = std::make_shared<connection>(executor, std::move(cfg));
    if (sink) {
      // The node connection's reader runs inside run_connection, whose completion holds this
      // impl: `this` outlives every call of the sink.
      conn->set_push_sink([this, address, subscriber](generic_response&& push) {
        if (subscriber) {
          on_subscriber_push(address, push);
        }
        sink(std::move(push));
      });
    }
    spawn(run_connection(conn), "redis cluster node connection");
    if (!sink) {
      spawn(forward_pushes(shared_from_this(), conn, address, subscriber), "redis push forwarder");
    }
    return conn;
  }

  // The entry of a master or redirection target, created (and connected) on first use.
  node_ptr ensure_node(const cluster_node& node) {
    if (stopping) {
      return nullptr;
    }
    const std::string address = node.address();
    if (auto it = nodes.find(address); it != nodes.end()) {
      return it->second;
    }
    auto entry = std::make_shared<cluster_node_entry>();
    entry->node = node;
    entry->address = address;
    entry->conn = start_connection(node, false, address);
    nodes.emplace(address, entry);
    return entry;
  }

  std::shared_ptr<connection> ensure_subscriber(const node_ptr& entry) {
    if (!entry->subscriber) {
      entry->subscriber = start_connection(entry->node, true, entry->address);
    }
    return entry->subscriber;
  }

  // Channels subscribed on `entry`'s subscriber go back to "to be subscribed".
  void drop_subscriber(const node_ptr& entry) {
    if (!entry->subscriber) {
      return;
    }
    entry->subscriber->cancel();
    entry->subscriber.reset();
    for (auto& [channel, at] : shard_channels) {
      if (at == entry->address) {
        at.clear();
      }
    }
    mark_subscriptions_dirty();
  }

  // The node is not a master any more: waiting requests (never written, or idempotent)
  // fail on it with connection_closed and are routed again by exec().
  void retire(const node_ptr& entry) {
    entry->retired = true;
    CORVO_LOG(info, "redis.cluster") << "node " << entry->address << " is no longer a master";
    entry->conn->cancel();
    drop_subscriber(entry);
  }

  // ---- topology ------------------------------------------------------------------------

  void request_refresh() {
    refresh_requested = true;
    wakeup.cancel();
  }

  void apply_map(slot_map fresh) {
    const bool changed = !map.same_routing(fresh);
    map = std::move(fresh);
    if (changed) {
      ++stats.topology_changes;
    }
    if (!opts.connect_lazily) {
      for (const auto& shard : map.shards()) {
        ensure_node(shard.master);
      }
    }
    for (auto it = nodes.begin(); it != nodes.end();) {
      if (!map.is_master(it->first)) {
        retire(it->second);
        retired_stats[it->first] += it->second->conn->stats();
        it = nodes.erase(it);
      } else {
        ++it;
      }
    }
    topology_waiters.notify_all();
    mark_subscriptions_dirty();
  }

  // A master connection that has been down for a while, or a slot without owner: poll
  // the topology to notice the failover.
  bool degraded() const {
    if (map.empty()) {
      return false;
    }
    if (map.covered_slots() != slot_count) {
      return true;
    }
    const auto now = clock_type::now();
    for (const auto& [address, entry] : nodes) {
      if (!entry->conn->is_connected() &&
          (entry->conn->stats().connects > 0 || now - entry->created > opts.node.connect_timeout)) {
        return true;
      }
    }
    return false;
  }

  // Connections opened only to ask for the topology; cancel() closes them too.
  std::set<std::shared_ptr<connection>> temporaries;

  struct cancel_on_exit {
    impl& self;
    std::shared_ptr<connection> conn;
    ~cancel_on_exit() {
      if (conn) {
        conn->cancel();
        self.temporaries.erase(conn);
      }
    }
  };

  // Asks one node after another for the topology; applies the first answer that maps
  // at least one slot. Returns false when nobody answered.
  asio::awaitable<bool> refresh_once() {
    last_refresh = clock_type::now();
    std::vector<cluster_node> candidates;
    std::vector<cluster_node> connected;
    std::vector<cluster_node> slow;  // connected, but a reply is overdue: maybe hung
    for (const auto& [address, entry] : nodes) {
      if (entry->conn->is_connected()) {
        (entry->conn->reply_wait() < opts.refresh_timeout / 4 ? connected : slow)
            .push_back(entry->node);
      }
    }
    if (!connected.empty()) {
      std::rotate(connected.begin(), connected.begin() + (round_robin++ % connected.size()),
                  connected.end());
    }
    // A hung node is asked last: the others answer at once, it would hold the refresh for
    // refresh_timeout.
    candidates = connected;
    candidates.insert(candidates.end(), slow.begin(), slow.end());
    for (const auto& n : map.all_nodes()) {
      if (auto it = nodes.find(n.address());
          it == nodes.end() || !it->second->conn->is_connected()) {
        candidates.push_back(n);
      }
    }
    for (const auto& [host, port] : seeds) {
      candidates.push_back(cluster_node{host, port, {}});
    }
    std::set<std::string> tried;
    for (const auto& candidate : candidates) {
      if (stopping) {
        co_return false;
      }
      if (!tried.insert(candidate.address()).second) {
        continue;
      }
      std::shared_ptr<connection> conn;
      cancel_on_exit temporary{*this, nullptr};
      if (auto it = nodes.find(candidate.address());
          it != nodes.end() && it->second->conn->is_connected()) {
        conn = it->second->conn;
      } else {
        config cfg = opts.node;
        cfg.host = candidate.host;
        cfg.port = candidate.port;
        cfg.connect_timeout = opts.refresh_timeout;
        cfg.health_check_interval = std::chrono::milliseconds{0};
        conn = std::make_shared<connection>(executor, std::move(cfg));
        temporary.conn = conn;
        temporaries.insert(conn);
        spawn(run_connection(conn), "redis cluster topology connection");
      }
      request req;
      req.push("CLUSTER", opts.use_cluster_shards ? "SHARDS" : "SLOTS");
      generic_response reply;
      error_code failed;
      try {
        co_await with_timeout(conn->exec(req, reply), opts.refresh_timeout);
      } catch (const boost::system::system_error& e) {
        failed = e.code();
      }
      if (failed) {
        const auto state = co_await asio::this_coro::cancellation_state;
        if (state.cancelled() != asio::cancellation_type::none) {
          fail(asio::error::operation_aborted, "redis cluster refresh");
        }
        CORVO_LOG(debug, "redis.cluster")
            << "topology from " << candidate.address() << " failed: " << failed.message();
        continue;
      }
      if (!reply.empty() && resp3::is_error(reply.front().data_type)) {
        CORVO_LOG(warning, "redis.cluster")
            << candidate.address() << " refused the topology query: " << reply.front().value;
        continue;
      }
      error_code ec;
      slot_map fresh = opts.use_cluster_shards
                           ? slot_map::from_cluster_shards(reply, candidate.host, ec)
                           : slot_map::from_cluster_slots(reply, candidate.host, ec);
      if (ec || fresh.covered_slots() == 0) {
        continue;
      }
      ++stats.refreshes;
      apply_map(std::move(fresh));
      co_return true;
    }
    co_return false;
  }

  asio::awaitable<void> maintain() {
    backoff discovery(opts.node.reconnect_backoff);
    while (!stopping) {
      const auto now = clock_type::now();
      const bool due = map.empty() || refresh_requested ||
                       now - last_refresh >= opts.refresh_interval || degraded();
      if (due && (map.empty() || now - last_refresh >= opts.min_refresh_interval)) {
        refresh_requested = false;
        if (co_await refresh_once()) {
          discovery.reset();
          continue;
        }
        if (stopping) {
          break;  // cancel() came during the refresh: no pause (its wake-up is spent)
        }
        if (map.empty()) {
          const auto delay = discovery.next();
          CORVO_LOG(warning, "redis.cluster")
              << "no seed node answered CLUSTER SLOTS; retrying in " << delay.count() << " ms";
          wakeup.expires_after(delay);
          error_code ignored;
          co_await wakeup.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
          continue;
        }
      }
      wakeup.expires_after(opts.min_refresh_interval);
      error_code ignored;
      co_await wakeup.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
  }

  void stop_all() {
    if (stopping && nodes.empty()) {
      return;
    }
    stopping = true;
    wakeup.cancel();
    subs_wakeup.cancel();
    for (auto& [address, entry] : nodes) {
      entry->conn->cancel();
      if (entry->subscriber) {
        entry->subscriber->cancel();
      }
    }
    nodes.clear();
    for (const auto& conn : temporaries) {
      conn->cancel();
    }
    pushes.close();
    topology_waiters.notify_all();
    subs_waiters.notify_all();
  }

  asio::awaitable<void> run() {
    if (run_started) {
      throw std::logic_error("redis::cluster_client::run() called twice");
    }
    run_started = true;
    std::exception_ptr failure;
    if (!stopping) {
      spawn(keep_subscriptions(shared_from_this()), "redis sharded pub/sub keeper");
      try {
        co_await maintain();
      } catch (...) {
        failure = std::current_exception();
      }
    }
    co_await asio::this_coro::reset_cancellation_state();
    stop_all();
    while (tasks_running > 0) {
      tasks_done.expires_at(clock_type::time_point::max());
      error_code ignored;
      co_await tasks_done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    if (failure) {
      std::rethrow_exception(failure);
    }
  }

  // ---- requests ------------------------------------------------------------------------

  asio::awaitable<void> wait_for_topology(const request& req) {
    while (map.empty()) {
      if (stopping) {
        fail(error::connection_closed, "redis cluster");
      }
      if (req.get_config().fail_if_not_connected) {
        fail(error::not_connected, "redis cluster: topology not known yet");
      }
      co_await wait_on(topology_waiters, clock_type::time_point::max());
    }
  }

  // The master for `slot`, or for a keyless request a connected master (round robin).
  node_ptr pick_node(std::optional<std::uint16_t> slot) {
    if (slot) {
      const cluster_node* owner = map.master_of(*slot);
      return owner != nullptr ? ensure_node(*owner) : nullptr;
    }
    const auto& shards = map.shards();
    if (shards.empty()) {
      return nullptr;
    }
    node_ptr fallback;
    for (std::size_t k = 0; k < shards.size(); ++k) {
      const auto& master = shards[(round_robin + k) % shards.size()].master;
      auto entry = ensure_node(master);
      if (entry && entry->conn->is_connected()) {
        ++round_robin;
        return entry;
      }
      if (!fallback) {
        fallback = entry;
      }
    }
    ++round_robin;
    return fallback;
  }

  cluster_node redirect_target(const redirection& r, const cluster_node& replying) const {
    return cluster_node{r.host.empty() ? replying.host : r.host, r.port, {}};
  }

  // Pause before retrying a TRYAGAIN-like reply; false when the deadline has passed. The
  // backoff is made on first use: seeding one costs a random_device read.
  asio::awaitable<bool> pause_before_retry(std::optional<backoff>& delays,
                                           clock_type::time_point deadline) {
    const auto now = clock_type::now();
    if (now >= deadline) {
      co_return false;
    }
    if (!delays) {
      delays.emplace(opts.retry_backoff);
    }
    const auto delay = std::min<clock_type::duration>(delays->next(), deadline - now);
    co_await sleep_for(delay);
    co_return true;
  }

  asio::awaitable<std::size_t> exec(const request& req, any_adapter adapter,
                                    std::optional<route_hint> hint) {
    if (stopping) {
      fail(error::connection_closed, "redis cluster");
    }
    if (req.expected_responses() > adapter.size()) {
      fail(error::response_too_small, "redis cluster");
    }
    parsed_request parsed;
    if (!split_commands(req.payload(), parsed)) {
      fail(error::unroutable_request,
           "redis cluster: the request payload is not a list of commands");
    }
    request_route route;
    if (hint && hint->slot) {
      route.type = request_route::kind::slot;
      route.slot = *hint->slot % slot_count;
    } else {
      route = route_request(parsed);
    }
    switch (route.type) {
      case request_route::kind::cross_slot:
        fail(error::crossslot, route.message);
      case request_route::kind::mixed_subscription:
        fail(error::unroutable_request, route.message);
      case request_route::kind::shard_subscription:
        co_await exec_shard_subscription(parsed);
        co_return 0;
      default:
        break;
    }
    co_await wait_for_topology(req);
    if (route.type == request_route::kind::broadcast) {
      co_return co_await exec_broadcast(req, adapter);
    }
    const std::optional<std::uint16_t> slot = route.type == request_route::kind::slot
                                                  ? std::optional<std::uint16_t>(route.slot)
                                                  : std::nullopt;

    bool atomic = false;  // MULTI: redirected as a whole
    std::vector<std::size_t> with_reply;
    for (std::size_t i = 0; i < parsed.size(); ++i) {
      atomic = atomic || is_multi_command(parsed.name(i));
      if (expects_reply(parsed.name(i))) {
        with_reply.push_back(i);
      }
    }

    struct reply_ref {
      std::size_t output = 0;
      reply_span span;
    };
    std::vector<generic_response> outputs;
    std::vector<std::optional<reply_ref>> replies(parsed.size());
    std::vector<std::size_t> pending = with_reply;  // commands still without a final reply
    std::vector<std::size_t> asked;                 // of those, the ones to send with ASKING
    std::optional<cluster_node> ask_target;
    const auto deadline = clock_type::now() + opts.retry_deadline;
    std::optional<backoff> delays;
    unsigned redirections = 0;
    std::size_t total_bytes = 0;
    bool first = true;
    request rebuilt(req.get_config());

    // At least once: a request may hold only commands without a reply (SUBSCRIBE).
    while (first || !pending.empty()) {
      node_ptr node;
      std::vector<std::size_t> sent;  // command per reply of this attempt (no_command: ASKING)
      const request* to_send = &req;
      if (ask_target) {
        node = ensure_node(*ask_target);
        rebuilt.clear();
        if (atomic) {
          rebuilt.push("ASKING");
          sent.push_back(no_command);
        }
        for (std::size_t c : (atomic ? with_reply : asked)) {
          if (!atomic) {
            rebuilt.push("ASKING");
            sent.push_back(no_command);
          }
          rebuilt.push(parsed.name(c), parsed.args(c));
          sent.push_back(c);
        }
        to_send = &rebuilt;
        ask_target.reset();
      } else {
        node = pick_node(slot);
        if (!node) {
          if (stopping) {
            fail(error::connection_closed, "redis cluster");
          }
          if (clock_type::now() >= deadline || req.get_config().fail_if_not_connected) {
            // As documented for cluster_down: an unserved slot is an outage of that slot,
            // whether the server said CLUSTERDOWN or the topology has no owner for it. A
            // request that must not wait for a server (fail_if_not_connected) does not wait
            // for a new owner either.
            fail(error::cluster_down,
                 "redis cluster: no node serves slot " + std::to_string(slot.value_or(0)));
          }
          request_refresh();
          co_await wait_on(topology_waiters, deadline);
          continue;
        }
        if (first) {
          sent = with_reply;
        } else {
          rebuilt.clear();
          const auto& again = atomic ? with_reply : pending;
          for (std::size_t c : again) {
            rebuilt.push(parsed.name(c), parsed.args(c));
            sent.push_back(c);
          }
          to_send = &rebuilt;
        }
      }
      if (!node) {
        fail(error::connection_closed, "redis cluster");
      }
      first = false;

      generic_response out;
      out.reserve(to_send->expected_responses());
      auto conn = node->conn;  // keeps the connection while this request uses it
      auto [ec, bytes] =
          co_await conn->async_exec(*to_send, out, asio::as_tuple(asio::use_awaitable));
      if (ec) {
        if (ec == error::connection_closed && !stopping && node->retired) {
          // The node was retired while the request waited on it: it never ran (or it is
          // idempotent). Route it again with the new topology.
          ++stats.rerouted;
          if (atomic) {
            pending = with_reply;
          }
          first = pending.size() == with_reply.size();  // nothing answered yet: send as is
          continue;
        }
        if (ec == error::connection_lost || ec == error::request_timeout ||
            ec == error::connection_reset) {
          // A dead or hung node: look for its successor (asking the other nodes).
          request_refresh();
        }
        fail(ec, "redis cluster node " + node->address);
      }
      total_bytes += bytes;

      const auto spans = split_replies(out);
      if (spans.size() != sent.size()) {
        fail(error::unexpected_reply, "redis cluster: reply count does not match the request");
      }
      outputs.push_back(std::move(out));
      const std::size_t output = outputs.size() - 1;
      const generic_response& nodes_out = outputs.back();

      std::vector<std::size_t> redirected, retried;
      std::string_view last_error;
      asked.clear();
      bool need_pause = false;
      for (std::size_t k = 0; k < spans.size(); ++k) {
        const std::size_t c = sent[k];
        if (c == no_command) {
          continue;
        }
        const auto& root = nodes_out[spans[k].root];
        const auto kind = resp3::is_error(root.data_type) ? classify_cluster_error(root.value)
                                                          : cluster_error_kind::none;
        std::optional<redirection> target;
        if (kind == cluster_error_kind::moved || kind == cluster_error_kind::ask) {
          target = parse_redirection(root.value);
        }
        if (kind == cluster_error_kind::none ||
            ((kind == cluster_error_kind::moved || kind == cluster_error_kind::ask) && !target)) {
          replies[c] = reply_ref{output, spans[k]};
          continue;
        }
        if (kind == cluster_error_kind::moved) {
          ++stats.moved;
          if (map.move_slot(target->slot, redirect_target(*target, node->node))) {
            request_refresh();
          }
          redirected.push_back(c);
        } else if (kind == cluster_error_kind::ask) {
          ++stats.ask;
          ask_target = redirect_target(*target, node->node);
          asked.push_back(c);
        } else {
          if (kind == cluster_error_kind::cluster_down && req.get_config().fail_if_not_connected) {
            // The node is connected but cannot serve the slot (cluster_state:fail): a request
            // that must not wait for a server does not wait for the cluster to recover.
            // Nothing was executed.
            fail(error::cluster_down,
                 "redis cluster node " + node->address + ": " + std::string(root.value));
          }
          ++stats.retries;
          need_pause = true;
          last_error = root.value;
          if (kind != cluster_error_kind::try_again) {
            request_refresh();
          }
          retried.push_back(c);
        }
      }

      if (atomic && (!redirected.empty() || !asked.empty() || !retried.empty())) {
        for (std::size_t c : with_reply) {
          replies[c].reset();
        }
      }
      pending.clear();
      for (std::size_t c : with_reply) {
        if (!replies[c]) {
          pending.push_back(c);
        }
      }
      if (pending.empty()) {
        break;
      }
      if (!redirected.empty() || !asked.empty()) {
        if (++redirections > opts.max_redirections) {
          fail(error::too_many_redirections, "redis cluster: gave up after " +
                                                 std::to_string(opts.max_redirections) +
                                                 " redirections");
        }
      } else if (need_pause) {
        if (!co_await pause_before_retry(delays, deadline)) {
          fail(error::cluster_down, "redis cluster: " + std::string(last_error));
        }
      }
    }

    std::string buffer;
    error_code ec;
    std::size_t index = 0;
    for (std::size_t c : with_reply) {
      const auto& ref = *replies[c];
      serialize_reply(outputs[ref.output], ref.span.begin, ref.span.end, buffer);
      adapter.deliver(index++, buffer, ec);
      if (ec) {
        fail(ec, "redis cluster");
      }
    }
    co_return total_bytes;
  }

  // SCRIPT LOAD, FLUSHALL, ...: every master runs it; the caller gets the first error
  // reply, or the first master's replies. A master whose connection is down (lost, or its
  // connection attempts fail) is not waited for, nor one that does not answer within
  // retry_deadline: the others still run the command, then the call fails with
  // not_connected naming the masters it did not reach.
  asio::awaitable<std::size_t> exec_broadcast(const request& req, any_adapter adapter) {
    std::vector<cluster_node> masters;
    for (const auto& shard : map.shards()) {
      masters.push_back(shard.master);
    }
    std::optional<generic_response> chosen;
    std::size_t total = 0;
    std::string unreached;
    for (const auto& master : masters) {
      auto node = ensure_node(master);
      if (!node) {
        fail(error::connection_closed, "redis cluster");
      }
      auto conn = node->conn;
      const auto& tried = conn->stats();
      if (!conn->is_connected() && tried.connects + tried.connect_failures > 0) {
        unreached += (unreached.empty() ? "" : ", ") + node->address + " (connection down)";
        continue;
      }
      generic_response out;
      error_code ec;
      std::size_t bytes = 0;
      try {
        auto sent = conn->async_exec(req, out, asio::use_awaitable);
        bytes = co_await with_timeout(std::move(sent), opts.retry_deadline);
      } catch (const boost::system::system_error& e) {
        ec = e.code();
      }
      if (ec == corvo::error::timed_out) {
        unreached += (unreached.empty() ? "" : ", ") + node->address + " (no answer within " +
                     std::to_string(opts.retry_deadline.count()) + " ms)";
        continue;
      }
      if (ec) {
        fail(ec, "redis cluster node " + node->address);
      }
      total += bytes;
      const auto spans = split_replies(out);
      const bool has_error = std::any_of(spans.begin(), spans.end(), [&out](const reply_span& s) {
        return resp3::is_error(out[s.root].data_type);
      });
      if (!chosen || has_error) {
        const bool chosen_has_error =
            chosen && std::any_of(chosen->begin(), chosen->end(), [](const resp3::node& n) {
              return n.depth == 0 && resp3::is_error(n.data_type);
            });
        if (!chosen_has_error) {
          chosen = std::move(out);
        }
      }
    }
    if (!unreached.empty()) {
      fail(error::not_connected, "redis cluster: broadcast not run on " + unreached);
    }
    if (!chosen) {
      co_return 0;
    }
    std::string buffer;
    error_code ec;
    std::size_t index = 0;
    for (const auto& span : split_replies(*chosen)) {
      serialize_reply(*chosen, span.begin, span.end, buffer);
      adapter.deliver(index++, buffer, ec);
      if (ec) {
        fail(ec, "redis cluster");
      }
    }
    co_return total;
  }

  // ---- sharded pub/sub -----------------------------------------------------------------

  void mark_subscriptions_dirty() {
    if (!shard_channels.empty()) {
      subs_dirty = true;
      subs_wakeup.cancel();
    }
  }

  void on_subscriber_push(const std::string& address, const generic_response& push) {
    if (push.size() < 3 || push[1].value != "sunsubscribe") {
      return;
    }
    // A sunsubscribe we did not ask for: the slot moved away from this node.
    auto it = shard_channels.find(push[2].value);
    if (it != shard_channels.end() && it->second == address) {
      CORVO_LOG(info, "redis.cluster")
          << "shard channel " << it->first << " left " << address << "; subscribing again";
      it->second.clear();
      request_refresh();
      mark_subscriptions_dirty();
    }
  }

  asio::awaitable<void> wait_for_subscription_pass() {
    const std::uint64_t ticket = subs_passes_started + 1;
    while (subs_passes_done < ticket && !stopping) {
      co_await wait_on(subs_waiters, clock_type::time_point::max());
    }
  }

  asio::awaitable<void> exec_shard_subscription(const parsed_request& parsed) {
    for (std::size_t i = 0; i < parsed.size(); ++i) {
      const auto args = parsed.args(i);
      std::vector<std::string> channels(args.begin(), args.end());
      if (parsed.name(i).size() == std::string_view("SSUBSCRIBE").size()) {  // vs SUNSUBSCRIBE
        co_await add_shard_channels(std::move(channels), false);
      } else {
        co_await remove_shard_channels(std::move(channels));
      }
    }
  }

  asio::awaitable<void> add_shard_channels(std::vector<std::string> channels, bool) {
    if (stopping) {
      fail(error::connection_closed, "redis cluster");
    }
    for (const auto& channel : channels) {
      refused_channels.erase(channel);
      shard_channels.try_emplace(channel);
    }
    mark_subscriptions_dirty();
    co_await wait_for_subscription_pass();
    std::string refused;
    for (const auto& channel : channels) {
      if (refused_channels.erase(channel) != 0) {
        refused += (refused.empty() ? "" : ", ") + channel;
      }
    }
    if (!refused.empty()) {
      fail(error::subscription_refused, "redis cluster: SSUBSCRIBE refused for " + refused);
    }
  }

  asio::awaitable<void> remove_shard_channels(std::vector<std::string> channels) {
    if (channels.empty()) {  // SUNSUBSCRIBE without arguments: all of them
      for (const auto& [channel, at] : shard_channels) {
        channels.push_back(channel);
      }
    }
    // node address -> slot -> channels
    std::map<std::string, std::map<std::uint16_t, std::vector<std::string>>> by_node;
    for (auto& channel : channels) {
      auto it = shard_channels.find(channel);
      if (it == shard_channels.end()) {
        continue;
      }
      if (!it->second.empty()) {
        by_node[it->second][key_slot(channel)].push_back(channel);
      }
      shard_channels.erase(it);
      ever_subscribed.erase(channel);
    }
    for (auto& [address, slots] : by_node) {
      auto it = nodes.find(address);
      if (it == nodes.end() || !it->second->subscriber) {
        continue;
      }
      request req;
      for (auto& [slot, names] : slots) {
        req.push("SUNSUBSCRIBE", names);
      }
      auto sub = it->second->subscriber;
      auto [ec, n] = co_await sub->async_exec(req, ignore, asio::as_tuple(asio::use_awaitable));
      (void)n;
      if (ec && ec != error::connection_closed) {
        fail(ec, "redis cluster SUNSUBSCRIBE on " + address);
      }
    }
  }

  // Subscribes every desired channel that is not subscribed on its slot's master. Returns
  // false when some could not be (no owner yet, node unreachable, stale map).
  asio::awaitable<bool> sync_subscriptions() {
    bool complete = true;
    // Channels on a node that is not their owner any more: unsubscribe there (or drop the
    // subscriber connection when it is down, so it does not restore them on reconnect).
    std::map<std::string, std::map<std::uint16_t, std::vector<std::string>>> to_leave;
    std::map<std::string, std::map<std::uint16_t, std::vector<std::string>>> to_join;
    for (auto& [channel, at] : shard_channels) {
      const std::uint16_t slot = key_slot(channel);
      const cluster_node* owner = map.master_of(slot);
      if (owner == nullptr) {
        continue;
      }
      const std::string address = owner->address();
      if (!at.empty() && at != address) {
        auto it = nodes.find(at);
        if (it != nodes.end() && it->second->subscriber) {
          if (it->second->subscriber->is_connected()) {
            to_leave[at][slot].push_back(channel);
          } else {
            drop_subscriber(it->second);
          }
        }
        at.clear();
      }
    }
    for (auto& [channel, at] : shard_channels) {
      const std::uint16_t slot = key_slot(channel);
      const cluster_node* owner = map.master_of(slot);
      if (owner == nullptr) {
        complete = false;  // wait for a topology that has an owner
        continue;
      }
      if (at.empty()) {
        to_join[owner->address()][slot].push_back(channel);
      }
    }
    for (auto& [address, slots] : to_leave) {
      auto it = nodes.find(address);
      if (it == nodes.end() || !it->second->subscriber) {
        continue;
      }
      request req;
      for (auto& [slot, names] : slots) {
        req.push("SUNSUBSCRIBE", names);
      }
      auto sub = it->second->subscriber;
      co_await sub->async_exec(req, ignore, asio::as_tuple(asio::use_awaitable));
    }
    for (auto& [address, slots] : to_join) {
      const cluster_node* owner = map.master_of(slots.begin()->first);
      if (owner == nullptr || owner->address() != address) {
        complete = false;
        continue;
      }
      auto node = ensure_node(*owner);
      if (!node) {
        co_return false;
      }
      auto sub = ensure_subscriber(node);
      // Check ownership on this very connection first: SSUBSCRIBE on a node that does not
      // serve the slot gets a -MOVED reply where the connection expects none, which would
      // desynchronise it. A key command on the channel name answers MOVED in that case
      // (ASK during a migration means the node still serves the channel).
      request check;
      std::vector<std::uint16_t> order;
      for (auto& [slot, names] : slots) {
        check.push("EXISTS", names.front());
        order.push_back(slot);
      }
      generic_response answer;
      try {
        co_await with_timeout(sub->exec(check, answer), opts.refresh_timeout);
      } catch (const boost::system::system_error& e) {
        if (stopping) {
          co_return false;
        }
        CORVO_LOG(debug, "redis.cluster")
            << "shard subscription check on " << address << " failed: " << e.code().message();
        complete = false;
        continue;
      }
      const auto spans = split_replies(answer);
      for (std::size_t k = 0; k < spans.size() && k < order.size(); ++k) {
        const auto& root = answer[spans[k].root];
        const auto error_kind = resp3::is_error(root.data_type) ? classify_cluster_error(root.value)
                                                                : cluster_error_kind::none;
        if (resp3::is_error(root.data_type) && error_kind != cluster_error_kind::ask) {
          // MOVED: this node lost the slot after our map was made (a migration, a failover
          // it has not told us of): refresh and subscribe on the new owner next pass.
          if (error_kind == cluster_error_kind::moved) {
            ++stats.moved;
          }
          request_refresh();
          complete = false;
          continue;
        }
        // One SSUBSCRIBE per slot and per exec, so a refusal (NOPERM) names its channels.
        const auto& names = slots[order[k]];
        request subscribe;
        subscribe.push("SSUBSCRIBE", names);
        auto [ec, n] =
            co_await sub->async_exec(subscribe, ignore, asio::as_tuple(asio::use_awaitable));
        (void)n;
        if (ec == error::subscription_refused) {
          for (const auto& channel : names) {
            shard_channels.erase(channel);
            refused_channels.insert(channel);
          }
          continue;
        }
        if (ec) {
          complete = false;
          continue;
        }
        for (const auto& channel : names) {
          if (auto it = shard_channels.find(channel); it != shard_channels.end()) {
            if (!ever_subscribed.insert(channel).second) {
              ++stats.resubscribed;
            }
            it->second = address;
          }
        }
      }
    }
    co_return complete;
  }

  static asio::awaitable<void> keep_subscriptions(std::shared_ptr<impl> self) {
    bool resubscribing = false;
    while (!self->stopping) {
      if (!self->subs_dirty || self->map.empty()) {
        self->subs_wakeup.expires_at(clock_type::time_point::max());
        error_code ignored;
        co_await self->subs_wakeup.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        continue;
      }
      if (resubscribing) {
        // A pass left work undone (no owner yet, node unreachable): not more than once per
        // refresh interval.
        self->subs_wakeup.expires_after(self->opts.min_refresh_interval);
        error_code ignored;
        co_await self->subs_wakeup.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        if (self->stopping) {
          break;
        }
      }
      self->subs_dirty = false;
      ++self->subs_passes_started;
      bool complete = false;
      try {
        complete = co_await self->sync_subscriptions();
      } catch (const boost::system::system_error& e) {
        if (self->stopping) {
          break;
        }
        CORVO_LOG(warning, "redis.cluster") << "shard subscriptions: " << e.what();
      }
      ++self->subs_passes_done;
      self->subs_waiters.notify_all();
      resubscribing = !complete;
      if (!complete) {
        self->subs_dirty = true;
      }
    }
    self->subs_waiters.notify_all();
  }
};

// ---- cluster_client --------------------------------------------------------------------

cluster_client::cluster_client(executor_type executor, cluster_options options)
    : impl_(std::make_shared<impl>(std::move(executor), std::move(options))) {}

cluster_client::~cluster_client() {
  impl_->stop_all();
}

cluster_client::executor_type cluster_client::get_executor() const noexcept {
  return impl_->executor;
}

const cluster_options& cluster_client::get_options() const noexcept {
  return impl_->opts;
}

asio::awaitable<void> cluster_client::run() {
  auto self = impl_;
  co_await self->run();
}

void cluster_client::cancel() {
  impl_->stop_all();
}

void cluster_client::reset_connections(std::string_view reason) {
  for (auto& [address, entry] : impl_->nodes) {
    entry->conn->reset(reason);
  }
}

void cluster_client::reset_connection_to(std::string_view address, std::string_view reason) {
  if (const auto it = impl_->nodes.find(std::string(address)); it != impl_->nodes.end()) {
    it->second->conn->reset(reason);
  }
}

asio::awaitable<std::size_t> cluster_client::exec(const request& req, any_adapter resp) {
  auto self = impl_;
  co_return co_await self->exec(req, resp, std::nullopt);
}

asio::awaitable<std::size_t> cluster_client::exec(const request& req, any_adapter resp,
                                                  route_hint hint) {
  auto self = impl_;
  co_return co_await self->exec(req, resp, hint);
}

asio::awaitable<void> cluster_client::ssubscribe(std::vector<std::string> channels) {
  auto self = impl_;
  co_await self->add_shard_channels(std::move(channels), false);
}

asio::awaitable<void> cluster_client::sunsubscribe(std::vector<std::string> channels) {
  auto self = impl_;
  co_await self->remove_shard_channels(std::move(channels));
}

void cluster_client::set_push_sink(connection::push_sink sink) {
  impl_->sink = std::move(sink);
}

asio::awaitable<generic_response> cluster_client::receive() {
  auto self = impl_;
  auto [ec, push] = co_await self->pushes.async_receive(asio::as_tuple(asio::use_awaitable));
  // A cancelled channel receive reports channel_cancelled; callers get operation_aborted, as
  // documented and as connection::receive() reports it.
  if (ec == asio::experimental::error::channel_cancelled) {
    ec = asio::error::operation_aborted;
  }
  if (ec) {
    throw boost::system::system_error(ec);
  }
  co_return std::move(push);
}

std::unique_ptr<cluster_client> cluster_client::dedicated() const {
  cluster_options options = impl_->opts;
  options.node.role = connection_role::dedicated;
  options.connect_lazily = true;
  auto client = std::make_unique<cluster_client>(impl_->executor, std::move(options));
  if (!impl_->map.empty()) {
    client->impl_->map = impl_->map;
    client->impl_->last_refresh = clock_type::now();
  }
  return client;
}

bool cluster_client::has_topology() const noexcept {
  return !impl_->map.empty();
}

slot_map cluster_client::topology() const {
  return impl_->map;
}

const cluster_stats& cluster_client::stats() const noexcept {
  return impl_->stats;
}

std::vector<std::pair<std::string, connection_stats>> cluster_client::node_stats() const {
  std::map<std::string, connection_stats> by_address = impl_->retired_stats;
  for (const auto& [address, node] : impl_->nodes) {
    by_address[address] += node->conn->stats();
  }
  return {by_address.begin(), by_address.end()};
}

}  // namespace corvo::redis
