#include <boost/json/parse.hpp>
#include <corvo/stream/typed_handlers.hpp>
#include <map>

namespace corvo::stream {

struct typed_handlers::state {
  std::map<std::string, handler_entry, std::less<>> handlers;
};

typed_handlers::typed_handlers() : state_(std::make_shared<state>()) {}

void typed_handlers::add(std::string type, handler_entry h) {
  state_->handlers[std::move(type)] = std::move(h);
}

void typed_handlers::throw_decode_error(const entry& e, const char* what) {
  throw permanent_error("data of type '" + std::string(e.field(event_field::type).value_or("")) +
                            "' does not decode: " + what,
                        "decode_error");
}

asio::awaitable<void> typed_handlers::operator()(const entry& e) const {
  const auto type = e.field(event_field::type);
  if (!type) {
    throw permanent_error("entry has no field 'type'", "decode_error");
  }
  const auto it = state_->handlers.find(*type);
  if (it == state_->handlers.end()) {
    throw permanent_error("no handler for event type '" + std::string(*type) + "'", "unknown_type");
  }
  const auto data = e.field(event_field::data);
  if (!data) {
    throw permanent_error("entry of type '" + std::string(*type) + "' has no field 'data'",
                          "decode_error");
  }
  boost::system::error_code ec;
  const boost::json::value document = boost::json::parse(*data, ec);
  if (ec) {
    throw permanent_error(
        "data of type '" + std::string(*type) + "' is not valid JSON: " + ec.message(),
        "decode_error");
  }
  return it->second(document, e);
}

bool typed_handlers::handles(std::string_view type) const {
  return state_->handlers.find(type) != state_->handlers.end();
}

std::vector<std::string> typed_handlers::types() const {
  std::vector<std::string> out;
  for (const auto& [type, h] : state_->handlers) {
    out.push_back(type);
  }
  return out;
}

}  // namespace corvo::stream
