// Links corvo::redis alone: parses a connection URL and encodes a request (no server needed).
#include <corvo/redis/config.hpp>
#include <corvo/redis/request.hpp>
#include <iostream>

int main() {
  const auto config = corvo::redis::config::from_url("redis://cache.example:6380/2");
  corvo::redis::request req;
  req.push("SET", "key", 42);
  if (config.port != "6380" || req.payload() != "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$2\r\n42\r\n") {
    std::cerr << "unexpected: port " << config.port << ", payload " << req.payload() << "\n";
    return 1;
  }
  std::cout << "corvo redis-only consumer ok\n";
  return 0;
}
