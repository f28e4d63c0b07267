#pragma once
// Free TCP ports on 127.0.0.1 for servers started by tests.
//
// A port is only known to be free at the moment it is probed; the server binds it a little
// later. Two things keep that window harmless: a port is never handed out twice by the same
// process (tests pick all ports of a cluster before starting any node), and callers that
// lose the race (a parallel test took the port) retry with a new one.

#include <cstdint>

namespace corvo::test {

/// A TCP port on 127.0.0.1 that the kernel just handed out for `bind(port 0)` and that this
/// process has not handed out before. Throws `std::system_error` if no socket can be bound.
std::uint16_t free_port();

/// A port for a Redis cluster node: both `port` and its cluster bus port `port + 10000` are
/// free, and `port` is below 55000 so the bus port stays in range. Throws
/// `std::runtime_error` if none is found after many attempts.
std::uint16_t free_cluster_port();

/// True if a listening socket could be bound to 127.0.0.1:`port` right now.
bool port_is_free(std::uint16_t port);

}  // namespace corvo::test
