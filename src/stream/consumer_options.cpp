#include <corvo/stream/consumer_options.hpp>

namespace corvo::stream {

namespace {

backoff_policy read_backoff(const corvo::config& c, std::string_view key, backoff_policy b) {
  const auto section = c.section(key);
  b.initial = section.get_or("initial", b.initial);
  b.max = section.get_or("max", b.max);
  return b;
}

}  // namespace

consumer_options consumer_options::from(const corvo::config& cfg, std::string_view section) {
  const auto c = cfg.section(section);
  consumer_options o;
  o.group = c.get_or<std::string>("group", "");
  if (c.contains("streams")) {
    const auto value = c.get<boost::json::value>("streams");
    if (value.is_string()) {
      std::string_view all = value.get_string();
      while (!all.empty()) {
        const auto comma = all.find(',');
        auto one = all.substr(0, comma);
        while (!one.empty() && one.front() == ' ') {
          one.remove_prefix(1);
        }
        while (!one.empty() && one.back() == ' ') {
          one.remove_suffix(1);
        }
        if (!one.empty()) {
          o.streams.emplace_back(one);
        }
        all = comma == std::string_view::npos ? std::string_view{} : all.substr(comma + 1);
      }
    } else {
      o.streams = c.get<std::vector<std::string>>("streams");
    }
  }
  o.consumer = c.get_or<std::string>("consumer", "");
  o.start_id = c.get_or<std::string>("start_id", o.start_id);
  o.batch = c.get_or<std::size_t>("batch", o.batch);
  o.block = c.get_or("block", o.block);
  o.max_in_flight = c.get_or<std::size_t>("max_in_flight", o.max_in_flight);
  o.ordered_by_key = c.get_or("ordered_by_key", o.ordered_by_key);
  o.min_idle = c.get_or("min_idle", o.min_idle);
  o.claim_interval = c.get_or("claim_interval", o.claim_interval);
  o.claim_batch = c.get_or<std::size_t>("claim_batch", o.claim_batch);
  o.max_deliveries = c.get_or<std::uint64_t>("max_deliveries", o.max_deliveries);
  o.retry_backoff = read_backoff(c, "retry_backoff", o.retry_backoff);
  o.redis_retry = read_backoff(c, "redis_retry", o.redis_retry);
  o.drain_timeout = c.get_or("drain_timeout", o.drain_timeout);
  o.ack_batch = c.get_or<std::size_t>("ack_batch", o.ack_batch);
  o.delete_idle_consumers_after =
      c.get_or("delete_idle_consumers_after", o.delete_idle_consumers_after);
  cfg.reject_unknown_keys(section);
  const std::string prefix(section);
  if (o.group.empty()) {
    throw config_error(prefix + ".group", "is required (the consumer group's name)");
  }
  if (o.streams.empty()) {
    throw config_error(prefix + ".streams", "is required (at least one stream)");
  }
  if (o.batch == 0 || o.max_in_flight == 0 || o.claim_batch == 0 || o.ack_batch == 0 ||
      o.max_deliveries == 0) {
    throw config_error(prefix,
                       "batch, max_in_flight, claim_batch, ack_batch and max_deliveries must be "
                       "at least 1");
  }
  return o;
}

}  // namespace corvo::stream
