#include <corvo/kafka/error.hpp>

#include <librdkafka/rdkafka.h>

namespace corvo::kafka {
namespace {

class kafka_category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "corvo.kafka"; }

  std::string message(int value) const override {
    return rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(value));
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const kafka_category category;
  return category;
}

std::string error_name(const boost::system::error_code& ec) {
  if (ec.category() == error_category()) {
    return rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(ec.value()));
  }
  return ec.message();
}

}  // namespace corvo::kafka
