// The single translation unit that compiles Boost.Asio (and its SSL support) for the whole
// build. Every target that links corvo::corvo gets BOOST_ASIO_SEPARATE_COMPILATION, so no
// other translation unit instantiates Asio's non-template code.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
