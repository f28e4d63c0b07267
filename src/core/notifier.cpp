#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <corvo/core/notifier.hpp>

namespace corvo {

notifier::notifier(const asio::any_io_executor& executor)
    : timer_(executor, asio::steady_timer::time_point::max()) {}

asio::awaitable<void> notifier::wait() {
  ++waiters_;
  boost::system::error_code ignored;  // operation_aborted is the wake-up
  try {
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  } catch (...) {
    --waiters_;
    throw;
  }
  --waiters_;
  const auto state = co_await asio::this_coro::cancellation_state;
  if (state.cancelled() != asio::cancellation_type::none) {
    throw boost::system::system_error(asio::error::operation_aborted);
  }
}

void notifier::notify_all() noexcept {
  if (waiters_ > 0) {
    timer_.cancel();
  }
}

void notifier::notify_one() noexcept {
  if (waiters_ > 0) {
    timer_.cancel_one();
  }
}

}  // namespace corvo
