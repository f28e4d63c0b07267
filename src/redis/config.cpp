#include <corvo/redis/config.hpp>

#include <charconv>
#include <stdexcept>

namespace corvo::redis {
namespace {

[[noreturn]] void bad_url(std::string_view url, const std::string& why) {
  throw std::invalid_argument("redis URL '" + std::string(url) + "': " + why);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view url, std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) {
      bad_url(url, "truncated percent-escape");
    }
    const int hi = hex_value(text[i + 1]);
    const int lo = hex_value(text[i + 2]);
    if (hi < 0 || lo < 0) {
      bad_url(url, "invalid percent-escape");
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

bool parse_bool(std::string_view url, std::string_view key, std::string_view value) {
  if (value == "true" || value == "1" || value == "yes") return true;
  if (value == "false" || value == "0" || value == "no") return false;
  bad_url(url, "parameter '" + std::string(key) + "' must be true or false");
}

}  // namespace

config config::from_url(std::string_view url) {
  config cfg;
  std::string_view rest = url;
  if (rest.starts_with("redis://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("rediss://")) {
    rest.remove_prefix(9);
    cfg.use_tls = true;
  } else {
    bad_url(url, "the scheme must be redis:// or rediss://");
  }

  std::string_view query;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string_view path;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const auto userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      // redis://secret@host is how many clients spell a password-only URL.
      cfg.password = percent_decode(url, userinfo);
    } else {
      cfg.username = percent_decode(url, userinfo.substr(0, colon));
      cfg.password = percent_decode(url, userinfo.substr(colon + 1));
    }
  }

  // host[:port], with [v6]:port
  std::string_view host = rest;
  std::string_view port;
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    if (close == std::string_view::npos) {
      bad_url(url, "unterminated IPv6 address");
    }
    const auto after = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        bad_url(url, "unexpected text after the IPv6 address");
      }
      port = after.substr(1);
    }
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty()) {
    bad_url(url, "the host is missing");
  }
  cfg.host = std::string(host);
  if (!port.empty()) {
    unsigned value = 0;
    const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || ptr != port.data() + port.size() || value == 0 || value > 65535) {
      bad_url(url, "invalid port '" + std::string(port) + "'");
    }
    cfg.port = std::string(port);
  }
  if (!path.empty()) {
    int db = -1;
    const auto [ptr, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
    if (ec != std::errc{} || ptr != path.data() + path.size() || db < 0) {
      bad_url(url, "the database must be a non-negative number, got '" + std::string(path) + "'");
    }
    cfg.database = db;
  }

  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (item.empty()) {
      continue;
    }
    const auto eq = item.find('=');
    const auto key = item.substr(0, eq);
    const auto value = eq == std::string_view::npos ? std::string{}
                                                    : percent_decode(url, item.substr(eq + 1));
    if (key == "name") {
      cfg.client_name = value;
    } else if (key == "ca") {
      cfg.tls_ca_file = value;
    } else if (key == "cert") {
      cfg.tls_cert_file = value;
    } else if (key == "key") {
      cfg.tls_key_file = value;
    } else if (key == "sni") {
      cfg.tls_server_name = value;
    } else if (key == "verify") {
      cfg.tls_verify = parse_bool(url, key, value);
    } else {
      bad_url(url, "unknown parameter '" + std::string(key) + "'");
    }
  }
  return cfg;
}

}  // namespace corvo::redis
