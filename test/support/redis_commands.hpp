#pragma once
// One Redis command's reply, for tests that read or write keys by hand: integer(conn, words...),
// text(...) (a bulk string or nil) and strings(...) (a list). They are not coroutines
// themselves: the command's words are gathered before the coroutine starts, GCC 12 mishandling
// braced temporaries inside coroutines.

#include <boost/asio/awaitable.hpp>
#include <corvo/redis/client.hpp>
#include <optional>
#include <string>
#include <vector>

namespace corvo::test {

/// `command` (name, then arguments) as one request.
inline redis::request request_of(const std::vector<std::string>& command) {
  redis::request req;
  req.push(command.front(), std::vector<std::string>(command.begin() + 1, command.end()));
  return req;
}

template <class T>
boost::asio::awaitable<T> reply_to(redis::client& conn, redis::request req) {
  redis::response<T> resp;
  co_await conn.exec(req, resp);
  co_return std::get<0>(resp).value();
}

template <class... Words>
boost::asio::awaitable<long long> integer(redis::client& conn, const Words&... words) {
  return reply_to<long long>(conn, request_of({std::string(words)...}));
}

template <class... Words>
boost::asio::awaitable<std::optional<std::string>> text(redis::client& conn,
                                                        const Words&... words) {
  return reply_to<std::optional<std::string>>(conn, request_of({std::string(words)...}));
}

template <class... Words>
boost::asio::awaitable<std::vector<std::string>> strings(redis::client& conn,
                                                         const Words&... words) {
  return reply_to<std::vector<std::string>>(conn, request_of({std::string(words)...}));
}

}  // namespace corvo::test
