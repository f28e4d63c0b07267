#include <boost/json/parse.hpp>
#include <corvo/queue/typed_handlers.hpp>
#include <map>

namespace corvo::queue {

struct typed_handlers::state {
  options opts;
  std::map<std::string, entry, std::less<>> entries;
};

typed_handlers::typed_handlers(options opts) : state_(std::make_shared<state>()) {
  state_->opts = std::move(opts);
}

void typed_handlers::add(std::string type, entry e) {
  state_->entries[std::move(type)] = std::move(e);
}

void typed_handlers::throw_decode_error(std::string_view type, const char* what) {
  throw permanent_error("payload of type '" + std::string(type) + "' does not decode: " + what,
                        "decode_error");
}

asio::awaitable<void> typed_handlers::operator()(const item& it) const {
  const auto& opts = state_->opts;
  boost::system::error_code ec;
  const boost::json::value document = boost::json::parse(it.body, ec);
  if (ec) {
    throw permanent_error("body is not valid JSON: " + ec.message(), "decode_error");
  }
  if (!document.is_object()) {
    throw permanent_error("body is not a JSON object", "decode_error");
  }
  const auto& object = document.get_object();
  const auto type_it = object.find(opts.type_field);
  if (type_it == object.end() || !type_it->value().is_string()) {
    throw permanent_error("body has no string field '" + opts.type_field + "'", "decode_error");
  }
  const std::string_view type = type_it->value().get_string();
  const auto handler_it = state_->entries.find(type);
  if (handler_it == state_->entries.end()) {
    throw permanent_error("no handler for item type '" + std::string(type) + "'", "unknown_type");
  }
  if (opts.payload_field.empty()) {
    return handler_it->second(document, it, type);
  }
  const auto payload_it = object.find(opts.payload_field);
  if (payload_it == object.end()) {
    throw permanent_error(
        "item of type '" + std::string(type) + "' has no field '" + opts.payload_field + "'",
        "decode_error");
  }
  return handler_it->second(payload_it->value(), it, type);
}

bool typed_handlers::handles(std::string_view type) const {
  return state_->entries.find(type) != state_->entries.end();
}

std::vector<std::string> typed_handlers::types() const {
  std::vector<std::string> out;
  for (const auto& [type, handler] : state_->entries) {
    out.push_back(type);
  }
  return out;
}

}  // namespace corvo::queue
