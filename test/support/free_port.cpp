#include "support/free_port.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <set>
#include <stdexcept>
#include <system_error>

namespace corvo::test {
namespace {

std::mutex handed_out_mutex;
std::set<std::uint16_t> handed_out;  // guarded by handed_out_mutex

// Binds a TCP socket to 127.0.0.1:`port` (0: any) and returns the bound port, or 0 if the
// port is taken. SO_REUSEADDR matches what redis-server does, so ports in TIME_WAIT count
// as free, as they are for the server.
std::uint16_t bind_probe(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(), "socket");
  }
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  std::uint16_t bound = 0;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
    socklen_t length = sizeof address;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      bound = ntohs(address.sin_port);
    }
  } else if (port == 0) {
    const int error = errno;
    ::close(fd);
    throw std::system_error(error, std::generic_category(), "bind 127.0.0.1:0");
  }
  ::close(fd);
  return bound;
}

// Records `port` as handed out; false if it already was.
bool claim(std::uint16_t port) {
  std::lock_guard lock{handed_out_mutex};
  return handed_out.insert(port).second;
}

}  // namespace

bool port_is_free(std::uint16_t port) {
  return port != 0 && bind_probe(port) == port;
}

std::uint16_t free_port() {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    if (const auto port = bind_probe(0); claim(port)) {
      return port;
    }
  }
  throw std::runtime_error("free_port: no unused port found");
}

std::uint16_t free_cluster_port() {
  constexpr std::uint16_t bus_offset = 10000;
  constexpr std::uint16_t highest = 55000;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const auto port = bind_probe(0);
    if (port >= highest || !port_is_free(static_cast<std::uint16_t>(port + bus_offset))) {
      continue;
    }
    if (claim(port) && claim(static_cast<std::uint16_t>(port + bus_offset))) {
      return port;
    }
  }
  throw std::runtime_error("free_cluster_port: no port with a free cluster bus port found");
}

}  // namespace corvo::test
