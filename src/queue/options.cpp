#include <unistd.h>

#include <corvo/queue/options.hpp>
#include <cstdio>
#include <random>
#include <stdexcept>

namespace corvo::queue {

queue_options queue_options::from(const corvo::config& cfg, std::string_view section) {
  const auto s = cfg.section(section);
  queue_options o;
  o.name = s.get<std::string>("name");
  o.consumer = s.get_or<std::string>("consumer", o.consumer);
  o.max_in_flight = s.get_or<std::size_t>("max_in_flight", o.max_in_flight);
  o.batch = s.get_or<std::size_t>("batch", o.batch);
  o.block_timeout = s.get_or("block_timeout", o.block_timeout);
  o.drain_timeout = s.get_or("drain_timeout", o.drain_timeout);
  o.max_attempts = s.get_or<unsigned>("max_attempts", o.max_attempts);
  o.heartbeat_ttl = s.get_or("heartbeat_ttl", o.heartbeat_ttl);
  o.heartbeat_interval = s.get_or("heartbeat_interval", o.heartbeat_interval);
  o.reap = s.get_or("reap", o.reap);
  o.reap_interval = s.get_or("reap_interval", o.reap_interval);
  o.forget_after = s.get_or("forget_after", o.forget_after);
  o.dead_letter_max = s.get_or<std::size_t>("dead_letter_max", o.dead_letter_max);
  o.retry_delay = s.get_or("retry_delay", o.retry_delay);
  o.retry_delay_max = s.get_or("retry_delay_max", o.retry_delay_max);
  cfg.reject_unknown_keys(section);
  try {
    o.validate();
  } catch (const std::invalid_argument& e) {
    throw corvo::config_error(std::string(section),
                              "section '" + std::string(section) + "': " + e.what());
  }
  return o;
}

void queue_options::validate() const {
  if (name.empty()) {
    throw std::invalid_argument("a queue needs a name");
  }
  if (max_in_flight == 0 || batch == 0 || max_attempts == 0) {
    throw std::invalid_argument("max_in_flight, batch and max_attempts must be at least 1");
  }
  if (batch > 1000) {
    throw std::invalid_argument("batch must be at most 1000");
  }
  if (block_timeout.count() <= 0 || heartbeat_ttl.count() <= 0) {
    throw std::invalid_argument("block_timeout and heartbeat_ttl must be more than 0");
  }
  if (effective_heartbeat_interval() >= heartbeat_ttl ||
      effective_heartbeat_interval().count() <= 0) {
    throw std::invalid_argument("heartbeat_interval must be more than 0 and below heartbeat_ttl");
  }
  if (dead_letter_max == 0) {
    throw std::invalid_argument("dead_letter_max must be at least 1");
  }
  if (retry_delay.count() < 0 || retry_delay_max < retry_delay) {
    throw std::invalid_argument("retry_delay must be at least 0 and at most retry_delay_max");
  }
  if (consumer.find_first_of("{}") != std::string::npos) {
    throw std::invalid_argument("a consumer id cannot contain '{' or '}'");
  }
}

std::chrono::milliseconds queue_options::effective_heartbeat_interval() const {
  return heartbeat_interval.count() > 0 ? heartbeat_interval : heartbeat_ttl / 3;
}

std::chrono::milliseconds queue_options::effective_reap_interval() const {
  return reap_interval.count() > 0 ? reap_interval
                                   : std::max(heartbeat_ttl / 2, std::chrono::milliseconds(1));
}

std::chrono::milliseconds queue_options::retry_delay_after(std::uint32_t failures) const {
  auto delay = retry_delay;
  for (std::uint32_t i = 1; i < failures && delay < retry_delay_max; ++i) {
    delay *= 2;
  }
  return std::min(delay, retry_delay_max);
}

std::string queue_options::generated_consumer_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) {
    std::snprintf(host, sizeof host, "host");
  }
  std::random_device seed;
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%04x", static_cast<unsigned>(seed() & 0xffff));
  return std::string(host) + "-" + std::to_string(::getpid()) + "-" + suffix;
}

}  // namespace corvo::queue
