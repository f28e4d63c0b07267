#include <boost/system/system_error.hpp>
#include <corvo/redis/error.hpp>
#include <string>

namespace corvo::redis {
namespace {

class redis_category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "corvo.redis"; }

  std::string message(int value) const override {
    switch (static_cast<error>(value)) {
      case error::invalid_type_byte:
        return "RESP3: invalid type byte";
      case error::invalid_length:
        return "RESP3: invalid length or element count";
      case error::invalid_integer:
        return "RESP3: invalid integer";
      case error::invalid_double:
        return "RESP3: invalid double";
      case error::invalid_boolean:
        return "RESP3: invalid boolean";
      case error::invalid_big_number:
        return "RESP3: invalid big number";
      case error::invalid_verbatim_string:
        return "RESP3: verbatim string without a format prefix";
      case error::missing_crlf:
        return "RESP3: missing CRLF terminator";
      case error::streamed_type_unsupported:
        return "RESP3: streamed strings and aggregates are not supported";
      case error::nesting_too_deep:
        return "RESP3: aggregates nested too deep";
      case error::bulk_too_large:
        return "RESP3: bulk string longer than the configured maximum";
      case error::aggregate_too_large:
        return "RESP3: aggregate larger than the configured maximum";
      case error::message_too_large:
        return "RESP3: message larger than the configured maximum";
      case error::incomplete_message:
        return "RESP3: message is incomplete";
      case error::server_error:
        return "Redis replied with an error";
      case error::type_mismatch:
        return "reply type does not match the declared type";
      case error::unexpected_null:
        return "reply is null but the declared type is not optional";
      case error::not_a_number:
        return "reply is not a number";
      case error::size_mismatch:
        return "aggregate size does not match the declared type";
      case error::response_too_small:
        return "response has fewer slots than the request has replies";
      case error::subscription_refused:
        return "Redis refused the subscription (e.g. NOPERM: no ACL rights on the channel)";
      case error::not_connected:
        return "not connected to Redis";
      case error::connection_lost:
        return "connection to Redis lost";
      case error::connect_timeout:
        return "connecting to Redis timed out";
      case error::auth_failed:
        return "Redis authentication failed";
      case error::health_check_timeout:
        return "Redis health check timed out";
      case error::connection_closed:
        return "Redis connection closed";
      case error::handshake_failed:
        return "Redis handshake (HELLO/SELECT) failed";
      case error::unexpected_reply:
        return "Redis sent a reply no request was waiting for";
      case error::blocking_on_shared_connection:
        return "blocking Redis command on a shared connection; use a dedicated connection";
      case error::request_timeout:
        return "Redis did not reply within the request timeout (server hung or unreachable)";
      case error::connection_reset:
        return "the Redis connection was reset by its owner (server taken for unresponsive); "
               "the request may or may not have run";
      case error::crossslot:
        return "CROSSSLOT: the keys of the request hash to different cluster slots";
      case error::too_many_redirections:
        return "too many Redis Cluster redirections (MOVED/ASK)";
      case error::cluster_down:
        return "Redis Cluster cannot serve the slot (CLUSTERDOWN/TRYAGAIN or no owner until the "
               "deadline)";
      case error::unroutable_request:
        return "request cannot be routed in a Redis Cluster";
    }
    return "unknown corvo.redis error " + std::to_string(value);
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const redis_category category;
  return category;
}

bool is_not_connected(const std::exception_ptr& e) noexcept {
  if (!e) {
    return false;
  }
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& x) {
    return x.code() == error::not_connected;
  } catch (...) {
    return false;
  }
}

bool is_unreachable(const std::exception_ptr& e) noexcept {
  if (!e) {
    return false;
  }
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& x) {
    return x.code() == error::not_connected || x.code() == error::cluster_down;
  } catch (...) {
    return false;
  }
}

}  // namespace corvo::redis
