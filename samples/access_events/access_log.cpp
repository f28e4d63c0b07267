#include "access_log.hpp"

#include <corvo/core/log.hpp>
#include <stdexcept>
#include <utility>

namespace access_events {

const std::vector<std::string>& categories() {
  static const std::vector<std::string> all = {
      "admin.event", "admin.user", "admin.settings", "admin.other", "api", "static", "page"};
  return all;
}

std::string classify(std::string_view path) {
  path = path.substr(0, path.find('?'));
  static const std::pair<std::string_view, std::string_view> rules[] = {
      {"/admin/api/v1/event/", "admin.event"},
      {"/admin/api/v1/users", "admin.user"},
      {"/admin/api/v1/settings", "admin.settings"},
      {"/admin/", "admin.other"},
      {"/api/", "api"},
      {"/static/", "static"}};
  for (const auto& [prefix, category] : rules) {
    if (path.starts_with(prefix)) {
      return std::string(category);
    }
  }
  return "page";
}

std::vector<std::string> to_fields(const access_event& e) {
  return {"event_id", e.event_id,
          "category", e.category,
          "method",   e.method,
          "path",     e.path,
          "status",   std::to_string(e.status),
          "at",       std::to_string(e.at_ms)};
}

access_event from_entry(const corvo::stream::entry& entry) {
  auto text = [&](std::string_view name) {
    auto value = entry.field(name);
    if (!value) {
      throw std::invalid_argument("entry " + entry.id + " has no field " + std::string(name));
    }
    return std::string(*value);
  };
  access_event e;
  e.event_id = text("event_id");
  e.category = text("category");
  e.method = text("method");
  e.path = text("path");
  e.status = std::stoi(text("status"));
  e.at_ms = std::stoll(text("at"));
  return e;
}

event_buffer::event_buffer(corvo::redis::client& redis, event_buffer_options options)
    : redis_(redis), producer_(redis), options_(std::move(options)), wake_(redis.get_executor()) {}

void event_buffer::record(access_event e) {
  ++stats_.recorded;
  if (queue_.size() >= options_.limit) {
    ++stats_.dropped;
    return;
  }
  queue_.push_back(std::move(e));
  wake_.notify_all();
}

asio::awaitable<void> event_buffer::run() {
  corvo::backoff retry(options_.retry);
  bool failing = false;
  for (;;) {
    if (queue_.empty()) {
      co_await wake_.wait();  // a stop request throws here
      continue;
    }
    // One request carries the oldest `batch` events; they leave the queue only once Redis
    // has replied, so an outage keeps them (in order) for the next attempt.
    const std::size_t n = std::min(queue_.size(), options_.batch);
    corvo::redis::request::config rc;
    rc.idempotent = true;  // a resend after a lost reply may duplicate: consumers de-duplicate
    rc.fail_if_not_connected = true;
    corvo::redis::request req(rc);
    for (std::size_t i = 0; i < n; ++i) {
      producer_.push_xadd(req, options_.stream, to_fields(queue_[i]));
    }
    bool ok = true;
    try {
      co_await redis_.exec(req);
    } catch (const boost::system::system_error& e) {
      if (e.code() == asio::error::operation_aborted) {
        throw;
      }
      ok = false;
      if (!failing) {
        CORVO_LOG(warning, "access_events") << "appending to the stream failed (" << e.what()
                                            << "); " << queue_.size() << " events buffered";
      }
    }
    if (ok) {
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      stats_.appended += n;
      if (failing) {
        CORVO_LOG(info, "access_events") << "appending to the stream again";
      }
      failing = false;
      retry.reset();
      continue;
    }
    failing = true;
    ++stats_.failed_attempts;
    co_await corvo::sleep_for(retry.next());
  }
}

}  // namespace access_events
