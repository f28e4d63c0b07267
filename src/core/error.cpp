#include <corvo/core/error.hpp>

#include <string>

namespace corvo {
namespace {

class corvo_category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "corvo"; }

  std::string message(int value) const override {
    switch (static_cast<error>(value)) {
      case error::timed_out:
        return "operation timed out";
      case error::stopping:
        return "operation cancelled because its owner is stopping";
      case error::stop_timeout:
        return "component did not stop within its stop timeout";
    }
    return "unknown corvo error " + std::to_string(value);
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const corvo_category category;
  return category;
}

}  // namespace corvo
