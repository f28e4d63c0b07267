#include <corvo/schedule/sink.hpp>

namespace corvo::schedule {

void handler_registry::add(std::string type, handler_fn handler) {
  if (type.empty()) {
    throw std::invalid_argument("handler_registry: empty task type");
  }
  if (!handlers_.emplace(type, std::move(handler)).second) {
    throw std::invalid_argument("handler_registry: a handler for '" + type +
                                "' is already registered");
  }
}

const handler_registry::handler_fn* handler_registry::find(std::string_view type) const {
  const auto it = handlers_.find(type);
  return it == handlers_.end() ? nullptr : &it->second;
}

asio::awaitable<void> direct_sink::deliver(const claimed_task& t) {
  const auto* handler = handlers_.find(t.work.type);
  if (handler == nullptr) {
    throw permanent_error("no handler registered for task type '" + t.work.type + "'");
  }
  co_await (*handler)(t);
}

}  // namespace corvo::schedule
