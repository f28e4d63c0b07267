#pragma once
// The floor of the pub/sub fan-out benchmark: the same workload as bench/pubsub-fanout.cpp
// (one publisher, N subscriber connections, M messages paced evenly on one channel, latency
// from just before PUBLISH to the message being parsed) read by plain sockets and
// level-triggered epoll on one thread, with a minimal RESP2 scanner and no coroutines,
// buffers or allocation per message. What it measures is what the server and the kernel
// cost on this machine: no client can deliver faster over the same sockets.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::bench::raw {

struct fanout_result {
  std::vector<std::int64_t> nanos;  // one latency per delivery
  std::chrono::steady_clock::time_point first_publish, last_delivery;
};

namespace detail {

inline void check(bool ok, const char* what) {
  if (!ok) {
    throw std::runtime_error(std::string("raw fan-out: ") + what + ": " + std::strerror(errno));
  }
}

inline int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  check(fd >= 0, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  check(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "connect");
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

inline void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    check(n > 0, "send");
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Blocking read until `ending` has been seen (the SUBSCRIBE confirmation).
inline void read_until(int fd, std::string_view ending) {
  std::string got;
  char buf[512];
  while (got.find(ending) == std::string::npos) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    check(n > 0, "recv");
    got.append(buf, static_cast<std::size_t>(n));
  }
}

// One RESP2 bulk string at `at` ("$len\r\n...\r\n"): its body, and `at` moved past it.
// Empty optional-like result (data == nullptr) when incomplete.
inline std::string_view bulk(std::string_view in, std::size_t& at) {
  if (at >= in.size() || in[at] != '$') {
    return {};
  }
  const auto eol = in.find("\r\n", at);
  if (eol == std::string_view::npos) {
    return {};
  }
  std::size_t len = 0;
  std::from_chars(in.data() + at + 1, in.data() + eol, len);
  if (eol + 2 + len + 2 > in.size()) {
    return {};
  }
  const std::string_view body = in.substr(eol + 2, len);
  at = eol + 2 + len + 2;
  return body;
}

struct subscriber_socket {
  int fd = -1;
  std::string pending;  // bytes of an incomplete message
};

}  // namespace detail

/// Runs the fan-out against the server on 127.0.0.1:`port`. Throws on a socket error.
inline fanout_result run_fanout(std::uint16_t port, std::size_t subscribers, std::size_t messages,
                                std::size_t bytes, double rate) {
  using clock_type = std::chrono::steady_clock;
  using detail::check;
  const int ep = ::epoll_create1(0);
  check(ep >= 0, "epoll_create1");
  std::vector<detail::subscriber_socket> subs(subscribers);
  const std::string subscribe = "*2\r\n$9\r\nSUBSCRIBE\r\n$6\r\nfanout\r\n";
  for (std::size_t i = 0; i < subscribers; ++i) {
    subs[i].fd = detail::connect_to(port);
    detail::send_all(subs[i].fd, subscribe);
    detail::read_until(subs[i].fd, "\r\n:1\r\n");
    epoll_event ev{};
    ev.events = EPOLLIN;  // level-triggered: one recv per readiness, no draining to EAGAIN
    ev.data.u64 = i;
    check(::epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev) == 0, "epoll_ctl");
  }
  const int publisher = detail::connect_to(port);
  const std::uint64_t publisher_tag = subscribers, timer_tag = subscribers + 1;
  {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = publisher_tag;
    check(::epoll_ctl(ep, EPOLL_CTL_ADD, publisher, &ev) == 0, "epoll_ctl");
  }
  const int timer = ::timerfd_create(CLOCK_MONOTONIC, 0);  // steady_clock's clock
  check(timer >= 0, "timerfd_create");
  {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = timer_tag;
    check(::epoll_ctl(ep, EPOLL_CTL_ADD, timer, &ev) == 0, "epoll_ctl");
  }
  const auto interval =
      std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(1.0 / rate));
  fanout_result out;
  out.nanos.reserve(subscribers * messages);
  const std::size_t expected = subscribers * messages;
  const auto start = clock_type::now();
  out.first_publish = start;
  std::size_t published = 0;
  const auto arm = [&] {
    const auto at = (start + interval * static_cast<long>(published)).time_since_epoch();
    itimerspec spec{};
    spec.it_value.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(at).count();
    spec.it_value.tv_nsec = (at % std::chrono::seconds(1)).count();
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) {
      spec.it_value.tv_nsec = 1;
    }
    check(::timerfd_settime(timer, TFD_TIMER_ABSTIME, &spec, nullptr) == 0, "timerfd_settime");
  };
  arm();
  std::string command;
  char buf[64 * 1024];
  epoll_event events[128];
  auto give_up = clock_type::time_point::max();
  while (out.nanos.size() < expected && clock_type::now() < give_up) {
    const int n = ::epoll_wait(ep, events, 128, 100);
    check(n >= 0 || errno == EINTR, "epoll_wait");
    for (int e = 0; e < n; ++e) {
      const std::uint64_t tag = events[e].data.u64;
      if (tag == timer_tag) {
        std::uint64_t expirations = 0;
        check(::read(timer, &expirations, sizeof expirations) == sizeof expirations, "read");
        std::string payload = std::to_string(clock_type::now().time_since_epoch().count());
        payload.resize(std::max(bytes, payload.size() + 1), ' ');
        command = "*3\r\n$7\r\nPUBLISH\r\n$6\r\nfanout\r\n$" + std::to_string(payload.size()) +
                  "\r\n" + payload + "\r\n";
        detail::send_all(publisher, command);
        if (++published < messages) {
          arm();
        } else {
          give_up = clock_type::now() + std::chrono::seconds(10);
        }
      } else if (tag == publisher_tag) {
        check(::recv(publisher, buf, sizeof buf, 0) > 0, "recv (publisher)");  // ":N\r\n"
      } else {
        auto& s = subs[tag];
        const auto got = ::recv(s.fd, buf, sizeof buf, 0);
        check(got > 0, "recv");
        const auto now = clock_type::now();
        s.pending.append(buf, static_cast<std::size_t>(got));
        const std::string_view in = s.pending;
        std::size_t at = 0;
        for (;;) {
          // "*3\r\n" $message $fanout $payload
          if (in.size() < at + 4) {
            break;
          }
          std::size_t next = at + 4;
          if (detail::bulk(in, next).data() == nullptr ||
              detail::bulk(in, next).data() == nullptr) {
            break;
          }
          const auto payload = detail::bulk(in, next);
          if (payload.data() == nullptr) {
            break;
          }
          std::int64_t sent = 0;
          std::from_chars(payload.data(), payload.data() + payload.size(), sent);
          out.nanos.push_back(now.time_since_epoch().count() - sent);
          out.last_delivery = now;
          at = next;
        }
        s.pending.erase(0, at);
      }
    }
  }
  for (auto& s : subs) {
    ::close(s.fd);
  }
  ::close(publisher);
  ::close(timer);
  ::close(ep);
  return out;
}

}  // namespace corvo::bench::raw
