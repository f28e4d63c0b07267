#pragma once
// A Lua script run by its SHA1 (EVALSHA), loaded on demand.
//
//   static const redis::script claim(R"lua( ... )lua");
//   std::vector<std::string> keys{"{ns:0}:due", "{ns:0}:inflight"}, args{"100", "30000"};
//   redis::response<std::vector<std::string>> resp;
//   co_await claim.exec(conn, keys, args, resp);
//
// (Pass named vectors: GCC 12 rejects braced lists of strings as arguments inside a
// coroutine with "array used as initializer".)
//
// The first EVALSHA on a server that has not seen the script (or after SCRIPT FLUSH or a
// restart) gets NOSCRIPT; exec() then sends SCRIPT LOAD and the EVALSHA again, so callers
// never see NOSCRIPT. On a cluster client the SCRIPT LOAD goes to the master of the first
// key only (each master loads the script on its own first NOSCRIPT), so a master that is
// down does not hold up scripts on the others. A script without keys runs on any connected
// master (as every keyless request); on NOSCRIPT exec() sends it there as EVAL of its
// source (which loads it on that master), so a master that is down does not fail it either.
// Scripts declare every key they touch in KEYS (Redis Cluster routes by them).

#include <boost/asio/awaitable.hpp>
#include <corvo/redis/cluster/routing.hpp>
#include <corvo/redis/request.hpp>
#include <corvo/redis/response.hpp>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace corvo::redis {

class script {
 public:
  explicit script(std::string source);

  const std::string& source() const noexcept { return source_; }
  /// Lower-case hex SHA1 of the source, as SCRIPT LOAD returns it.
  const std::string& sha1() const noexcept { return sha1_; }

  /// Appends `EVALSHA sha1 numkeys keys... args...` to `req`.
  void push_to(request& req, const std::vector<std::string>& keys,
               const std::vector<std::string>& args) const;

  /// Appends `SCRIPT LOAD source` to `req`.
  void push_load_to(request& req) const;

  /// Appends `EVAL source numkeys keys... args...` to `req`.
  void push_eval_to(request& req, const std::vector<std::string>& keys,
                    const std::vector<std::string>& args) const;

  /// True when a reply slot holds the NOSCRIPT error.
  template <class T>
  static bool is_noscript(const result<T>& r) noexcept {
    return !r.has_value() && r.error().code == error::server_error &&
           std::string_view(r.error().message).starts_with("NOSCRIPT");
  }

  /// Runs the script on `conn` (a connection or client: anything with exec(req, resp)),
  /// loading it first when the server does not know it. `resp` receives the script's
  /// reply; script errors are stored in it like any server error. `cfg` is the config of
  /// the requests (e.g. `fail_if_not_connected`: fail at once instead of waiting while the
  /// connection is down).
  template <class Connection, class T>
  boost::asio::awaitable<void> exec(Connection& conn, std::vector<std::string> keys,
                                    std::vector<std::string> args, response<T>& resp,
                                    request::config cfg = {}) const {
    request req(cfg);
    push_to(req, keys, args);
    co_await conn.exec(req, resp);
    if (is_noscript(std::get<0>(resp))) {
      request load(cfg);
      push_load_to(load);
      response<std::string> loaded;
      if constexpr (requires { conn.exec(load, loaded, route_hint{}); }) {
        if (!keys.empty()) {
          // A cluster: load it on the master of the keys (the one that said NOSCRIPT), not
          // on every master, which would wait for any master that is down.
          const auto to_keys = route_hint::for_key(keys.front());
          co_await conn.exec(load, loaded, to_keys);
        } else {
          // No keys: EVALSHA went to any connected master. EVAL the source there too (it
          // loads the script on that master) rather than SCRIPT LOAD on every master: a
          // broadcast fails when a master is down, and a keyless script needs only one.
          request eval(cfg);
          push_eval_to(eval, keys, args);
          co_await conn.exec(eval, resp);
          co_return;
        }
      } else {
        co_await conn.exec(load, loaded);
      }
      loaded_sha1_matches(std::get<0>(loaded));
      co_await conn.exec(req, resp);
    }
  }

 private:
  // Throws when SCRIPT LOAD failed or answered with another SHA1 than ours.
  void loaded_sha1_matches(const result<std::string>& loaded) const;

  std::string source_;
  std::string sha1_;
};

}  // namespace corvo::redis
