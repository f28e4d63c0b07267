// Typed dispatch of JSON messages: the `type` field picks the handler, the payload is
// converted with Boost.JSON's value_to (tag_invoke), and everything that cannot be handled
// by any retry is a permanent_error with a reason. No broker needed.

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/value_to.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/kafka/error.hpp>
#include <corvo/kafka/message.hpp>
#include <corvo/kafka/typed_handlers.hpp>
#include <memory>
#include <string>
#include <support/run_coroutine.hpp>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;
namespace kafka = corvo::kafka;

namespace {

struct shipment {
  std::string id;
  int parcels = 0;
};

shipment tag_invoke(json::value_to_tag<shipment>, const json::value& v) {
  const auto& object = v.as_object();
  return {json::value_to<std::string>(object.at("id")), json::value_to<int>(object.at("parcels"))};
}

struct calls {
  std::vector<std::string> seen;
};

asio::awaitable<void> note(std::shared_ptr<calls> log, std::string entry) {
  log->seen.push_back(std::move(entry));
  co_return;
}

struct on_shipment {
  std::shared_ptr<calls> log;
  asio::awaitable<void> operator()(shipment s, const kafka::message& m) const {
    return note(log, "shipment " + s.id + " x" + std::to_string(s.parcels) + " @" +
                         std::to_string(m.offset()));
  }
};

struct on_ping {
  std::shared_ptr<calls> log;
  asio::awaitable<void> operator()(json::value) const { return note(log, "ping"); }
};

kafka::message message_with(std::string value) {
  return kafka::message::make("logistics", 0, 41, std::string("k"), std::move(value));
}

struct failure {
  std::string kind;
  std::string reason;
};

// Calls the dispatcher; returns the permanent_error it threw (kind "none" if it did not).
failure dispatch(const kafka::typed_handlers& handlers, std::string value) {
  asio::io_context ctx;
  const auto m = message_with(std::move(value));
  try {
    corvo::test::run(ctx, handlers(m));
  } catch (const kafka::permanent_error& e) {
    return {e.kind(), e.what()};
  }
  return {"none", ""};
}

// Handlers that suspend (a post to the loop) before they read the decoded value, so a value
// that does not outlive the call is read after it was destroyed. The id is long enough to be
// heap allocated (no small-string buffer hides the read under ASan).
const std::string long_id(64, 'z');

asio::awaitable<void> suspend() {
  const auto executor = co_await asio::this_coro::executor;
  co_await asio::post(executor, asio::use_awaitable);
}

struct by_const_ref_with_message {
  std::shared_ptr<calls> log;
  asio::awaitable<void> operator()(const shipment& s, const kafka::message& m) const {
    co_await suspend();
    log->seen.push_back("const& " + s.id + " x" + std::to_string(s.parcels) + " @" +
                        std::to_string(m.offset()));
  }
};

struct by_const_ref {
  std::shared_ptr<calls> log;
  asio::awaitable<void> operator()(const shipment& s) const {
    co_await suspend();
    log->seen.push_back("const& " + s.id + " x" + std::to_string(s.parcels));
  }
};

struct by_rvalue_ref {
  std::shared_ptr<calls> log;
  asio::awaitable<void> operator()(shipment&& s, const kafka::message&) const {
    co_await suspend();
    log->seen.push_back("&& " + s.id + " x" + std::to_string(s.parcels));
  }
};

struct by_value {
  std::shared_ptr<calls> log;
  asio::awaitable<void> operator()(shipment s) const {
    co_await suspend();
    log->seen.push_back("value " + s.id + " x" + std::to_string(s.parcels));
  }
};

// Runs the dispatch of `value` as the consumer does: the awaitable outlives the call that
// created it, and the message outlives the awaitable.
void dispatch_and_run(const kafka::typed_handlers& handlers, std::string value) {
  asio::io_context ctx;
  const auto m = message_with(std::move(value));
  asio::awaitable<void> running = handlers(m);
  corvo::test::run(ctx, std::move(running));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_typed_handlers)

BOOST_AUTO_TEST_CASE(the_type_field_selects_the_handler_and_the_payload_decodes) {
  auto log = std::make_shared<calls>();
  kafka::typed_handlers handlers;
  handlers.on<shipment>("shipment.created", on_shipment{log});
  handlers.on<json::value>("ping", on_ping{log});
  BOOST_TEST(handlers.handles("ping"));
  BOOST_TEST(!handlers.handles("pong"));
  BOOST_TEST((handlers.types() == std::vector<std::string>{"ping", "shipment.created"}));

  BOOST_TEST(dispatch(handlers, R"({"type":"shipment.created","id":"s-1","parcels":3})").kind ==
             "none");
  BOOST_TEST(dispatch(handlers, R"({"type":"ping"})").kind == "none");
  BOOST_TEST((log->seen == std::vector<std::string>{"shipment s-1 x3 @41", "ping"}));
}

BOOST_AUTO_TEST_CASE(a_payload_field_is_decoded_instead_of_the_whole_object) {
  auto log = std::make_shared<calls>();
  kafka::typed_handlers handlers({.type_field = "kind", .payload_field = "data"});
  handlers.on<shipment>("shipment", on_shipment{log});
  BOOST_TEST(dispatch(handlers, R"({"kind":"shipment","data":{"id":"s-2","parcels":1}})").kind ==
             "none");
  BOOST_TEST((log->seen == std::vector<std::string>{"shipment s-2 x1 @41"}));
  const auto missing = dispatch(handlers, R"({"kind":"shipment"})");
  BOOST_TEST(missing.kind == "decode_error");
  BOOST_TEST(missing.reason.find("no field 'data'") != std::string::npos, missing.reason);
}

BOOST_AUTO_TEST_CASE(messages_no_handler_can_take_are_permanent_errors_with_a_reason) {
  auto log = std::make_shared<calls>();
  kafka::typed_handlers handlers;
  handlers.on<shipment>("shipment.created", on_shipment{log});

  const auto unknown = dispatch(handlers, R"({"type":"shipment.teleported","id":"x"})");
  BOOST_TEST(unknown.kind == "unknown_type");
  BOOST_TEST(unknown.reason.find("shipment.teleported") != std::string::npos, unknown.reason);

  const auto not_json = dispatch(handlers, "{\"type\":");
  BOOST_TEST(not_json.kind == "decode_error");
  BOOST_TEST(not_json.reason.find("not valid JSON") != std::string::npos, not_json.reason);

  const auto not_object = dispatch(handlers, "[1,2]");
  BOOST_TEST(not_object.kind == "decode_error");
  BOOST_TEST(not_object.reason.find("not a JSON object") != std::string::npos);

  const auto no_type = dispatch(handlers, R"({"id":"s-1"})");
  BOOST_TEST(no_type.kind == "decode_error");
  BOOST_TEST(no_type.reason.find("no string field 'type'") != std::string::npos);

  const auto numeric_type = dispatch(handlers, R"({"type":7})");
  BOOST_TEST(numeric_type.kind == "decode_error");

  const auto wrong_shape = dispatch(handlers, R"({"type":"shipment.created","id":5,"parcels":1})");
  BOOST_TEST(wrong_shape.kind == "decode_error");
  BOOST_TEST(wrong_shape.reason.find("shipment.created") != std::string::npos, wrong_shape.reason);

  const auto missing_member = dispatch(handlers, R"({"type":"shipment.created","id":"s"})");
  BOOST_TEST(missing_member.kind == "decode_error");

  BOOST_TEST(log->seen.empty());  // no handler ran for any of them
}

BOOST_AUTO_TEST_CASE(decoding_fails_before_an_awaitable_exists) {
  kafka::typed_handlers handlers;
  auto log = std::make_shared<calls>();
  handlers.on<shipment>("shipment.created", on_shipment{log});
  const auto m = message_with(R"({"type":"nope"})");
  // The consumer calls the handler inside its try block; the error is thrown by the call.
  BOOST_CHECK_THROW((void)handlers(m), kafka::permanent_error);
}

BOOST_AUTO_TEST_CASE(handlers_taking_a_reference_read_a_live_value_after_suspending) {
  auto log = std::make_shared<calls>();
  kafka::typed_handlers handlers;
  handlers.on<shipment>("a", by_const_ref_with_message{log});
  handlers.on<shipment>("b", by_const_ref{log});
  handlers.on<shipment>("c", by_rvalue_ref{log});
  handlers.on<shipment>("d", by_value{log});
  for (const char* type : {"a", "b", "c", "d"}) {
    dispatch_and_run(handlers, std::string(R"({"type":")") + type + R"(","id":")" + long_id +
                                   R"(","parcels":7})");
  }
  BOOST_TEST((log->seen ==
              std::vector<std::string>{"const& " + long_id + " x7 @41", "const& " + long_id + " x7",
                                       "&& " + long_id + " x7", "value " + long_id + " x7"}));
}

BOOST_AUTO_TEST_CASE(messages_built_in_memory_expose_their_parts) {
  std::vector<kafka::header> headers;
  headers.push_back({"trace", std::string("t-1")});
  headers.push_back({"empty", std::nullopt});
  headers.push_back({"trace", std::string("t-2")});
  const auto m = kafka::message::make("orders", 3, 17, std::nullopt, "payload", headers);
  BOOST_TEST(m.topic() == "orders");
  BOOST_TEST(m.partition() == 3);
  BOOST_TEST(m.offset() == 17);
  BOOST_TEST(!m.key().has_value());
  BOOST_TEST(m.value() == "payload");
  BOOST_TEST(m.headers().size() == 3U);
  BOOST_TEST(m.header("trace").value_or("") == "t-2");  // the last one wins
  BOOST_TEST(m.has_header("empty"));
  BOOST_TEST(!m.header("empty").has_value());
  BOOST_TEST(!m.has_header("absent"));
  BOOST_TEST(m.timestamp().has_value());
}

BOOST_AUTO_TEST_SUITE_END()
