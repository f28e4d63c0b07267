#pragma once
// Completing a type-erased handler after the current handler returns, on the handler's own
// associated executor. Asio 1.26 cannot `post` to an any_completion_executor (it lacks
// blocking.never), so the hop goes through the owner's I/O executor, then dispatches.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <utility>

namespace corvo::detail {

// (Not asio::append: in 1.81 it forwards an any_completion_handler as an lvalue, which
// selects any_completion_handler's converting constructor and recurses without end.)
template <class Handler, class... Args>
void complete_later(const boost::asio::any_io_executor& via, Handler handler, Args... args) {
  boost::asio::post(via, [handler = std::move(handler), ... args = std::move(args)]() mutable {
    auto handler_executor = boost::asio::get_associated_executor(handler);
    boost::asio::dispatch(handler_executor,
                          [handler = std::move(handler), ... args = std::move(args)]() mutable {
                            std::move(handler)(std::move(args)...);
                          });
  });
}

}  // namespace corvo::detail
