// The pub/sub calls docs/pubsub.md shows, as a complete program:
//   pubsub_calls [URL]   (default redis://127.0.0.1:6379)
// It needs a live Redis server, so the install.find_package test only compiles it (see
// test/install_consumer/check.cmake); docs_snippets_test checks that docs/pubsub.md quotes
// it verbatim.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <corvo/pubsub/publish.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <iostream>

namespace asio = boost::asio;
namespace json = boost::json;
namespace pubsub = corvo::pubsub;
namespace redis = corvo::redis;

// [calls]
struct price_change {
  std::string sku;
  double price = 0;
};
void tag_invoke(json::value_from_tag, json::value& v, const price_change& p) {
  v = {{"sku", p.sku}, {"price", p.price}};
}
price_change tag_invoke(json::value_to_tag<price_change>, const json::value& v) {
  return {json::value_to<std::string>(v.at("sku")), json::value_to<double>(v.at("price"))};
}

asio::awaitable<void> listen(pubsub::subscriber& sub, redis::client& publisher) {
  // Named vectors: no braced temporaries inside co_await (GCC 12).
  std::vector<std::string> channels{"prices"};
  std::vector<std::string> patterns{"audit.*"};
  co_await sub.subscribe(channels);  // returns once the server confirmed
  co_await sub.psubscribe(patterns);

  const price_change change{"sku-7", 9.5};
  co_await pubsub::publish_json(publisher, "prices", change);
  co_await pubsub::publish(publisher, "audit.login", "ada");

  for (int received = 0; received < 2; ++received) {
    pubsub::message m = co_await sub.receive();  // waits; cancellation loses nothing
    if (m.channel == "prices") {
      const auto decoded = m.as<price_change>();  // throws pubsub::decode_error if bad
      std::cout << decoded.sku << " now costs " << decoded.price << "\n";
    } else {
      std::cout << m.pattern << " matched " << m.channel << ": " << m.payload << "\n";
    }
  }
  const pubsub::subscriber_stats stats = sub.stats();
  std::cout << "received " << stats.received << ", dropped " << stats.dropped << ", buffered "
            << stats.buffered << "\n";
}
// [/calls]

int main(int argc, char** argv) {
  const std::string url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
  asio::io_context ctx;
  const auto cfg = redis::client_config::from_url(url);
  // [setup]
  pubsub::subscriber_options options;  // or subscriber_options::from(app_config)
  options.buffer.max_messages = 1000;
  options.overflow = pubsub::overflow_policy::drop_oldest;
  pubsub::subscriber sub(ctx.get_executor(), cfg, options);
  asio::co_spawn(ctx, sub.run(), [](std::exception_ptr) {});
  redis::client publisher(ctx.get_executor(), cfg);
  asio::co_spawn(ctx, publisher.run(), [](std::exception_ptr) {});
  // [/setup]
  int code = 0;
  asio::co_spawn(ctx, listen(sub, publisher), [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::cerr << "pubsub_calls: " << ex.what() << "\n";
        code = 1;
      }
    }
    sub.cancel();
    publisher.cancel();
  });
  ctx.run();
  return code;
}
