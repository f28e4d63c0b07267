// The scheduler facade: provider chosen by configuration, typed handlers, local wake-up.
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <boost/test/unit_test.hpp>
#include <corvo/core/backoff.hpp>
#include <corvo/core/task_group.hpp>
#include <corvo/schedule/scheduler.hpp>

#include "support/redis_server.hpp"
#include "support/run_coroutine.hpp"

namespace asio = boost::asio;
namespace redis = corvo::redis;
namespace json = boost::json;
using namespace std::chrono_literals;
using namespace corvo::schedule;

namespace {

struct greeting {
  std::string name;
};

greeting tag_invoke(json::value_to_tag<greeting>, const json::value& v) {
  return {json::value_to<std::string>(v.as_object().at("name"))};
}

struct greeter {
  std::vector<std::string>* greeted;
  asio::awaitable<void> operator()(greeting g, const task&) const {
    greeted->push_back(g.name);
    co_return;
  }
};

json::value name_payload(const std::string& name) {
  json::object o;
  o["name"] = name;
  return o;
}

asio::awaitable<void> run_scheduler(scheduler& s) {
  co_await s.run();
}

asio::awaitable<void> greet_three(scheduler& s, std::vector<std::string>& greeted) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  const std::string names[] = {"ada", "grace", "edsger"};
  // Due times from one instant: each schedule() takes a round trip or two, which must not
  // shift the later tasks' due times.
  const auto start = now();
  for (int i = 0; i < 3; ++i) {
    task t;
    t.id = "greet-" + names[i];
    t.type = "greet";
    t.payload = name_payload(names[i]);
    t.due = start + std::chrono::milliseconds(100 + 30 * (3 - i));  // last scheduled runs first
    co_await s.schedule(std::move(t));
  }
  for (int i = 0; i < 1000 && greeted.size() < 3; ++i) {
    co_await corvo::sleep_for(2ms);
  }
  const auto st = co_await s.stats();
  BOOST_TEST(st.scheduled == 0u);
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(options_from_configuration) {
  const auto cfg = corvo::config::from_string(R"({"redis": {"url": "redis://h:1"},
      "scheduler": {"provider": "redis",
      "namespace": "orders", "shards": 8, "max_in_flight": 20, "lease": "45s"}})");
  const auto o = scheduler_options::from(cfg);
  BOOST_TEST((o.provider == provider::redis));
  BOOST_TEST(o.redis.name_space == "orders");
  BOOST_TEST(o.redis.shards == 8u);
  BOOST_TEST(o.dispatch.max_in_flight == 20u);
  BOOST_TEST(o.dispatch.lease.count() == 45'000);
  BOOST_TEST((scheduler_options::from(corvo::config{}).provider == provider::memory));
  BOOST_CHECK_EXCEPTION(
      scheduler_options::from(corvo::config::from_string(R"({"scheduler":{"provider":"sqs"}})")),
      corvo::config_error, [](const corvo::config_error& e) {
        return e.key() == "scheduler.provider" &&
               std::string(e.what()).find("\"sqs\"") != std::string::npos;
      });
  BOOST_CHECK_THROW(
      scheduler_options::from(corvo::config::from_string(R"({"scheduler":{"shards":0}})")),
      corvo::config_error);
  // scheduler.redis.claim_ahead_us: 500 by default, 0..100000, anything else named.
  BOOST_TEST(o.redis.claim_ahead.count() == 500);
  const auto ahead = [](const std::string& value) {
    return scheduler_options::from(corvo::config::from_string(
        R"({"redis": {"url": "redis://h:1"}, "scheduler": {"provider": "redis", )"
        R"("redis": {"claim_ahead_us": )" +
        value + "}}}"));
  };
  BOOST_TEST(ahead("0").redis.claim_ahead.count() == 0);
  BOOST_TEST(ahead("100000").redis.claim_ahead.count() == 100'000);
  BOOST_CHECK_EXCEPTION(ahead("100001"), corvo::config_error, [](const corvo::config_error& e) {
    return e.key() == "scheduler.redis.claim_ahead_us" &&
           std::string(e.what()).find("at most 100000") != std::string::npos;
  });
  BOOST_CHECK_EXCEPTION(ahead("-1"), corvo::config_error, [](const corvo::config_error& e) {
    return e.key() == "scheduler.redis.claim_ahead_us";
  });
  // scheduler.redis.compatible_leases: off by default, a boolean.
  BOOST_TEST(!o.redis.compatible_leases);
  const auto compatible = [](const std::string& value) {
    return scheduler_options::from(corvo::config::from_string(
        R"({"redis": {"url": "redis://h:1"}, "scheduler": {"provider": "redis", )"
        R"("redis": {"compatible_leases": )" +
        value + "}}}"));
  };
  BOOST_TEST(compatible("true").redis.compatible_leases);
  BOOST_TEST(!compatible("false").redis.compatible_leases);
  BOOST_CHECK_EXCEPTION(
      compatible("\"maybe\""), corvo::config_error,
      [](const corvo::config_error& e) { return e.key() == "scheduler.redis.compatible_leases"; });
  // scheduler.redis.compact (on by default) and compact_after (a minute; a duration, not negative).
  BOOST_TEST(o.redis.compact);
  BOOST_TEST(o.redis.compact_after.count() == 60'000);
  const auto compact = [](const std::string& fields) {
    return scheduler_options::from(corvo::config::from_string(
        R"({"redis": {"url": "redis://h:1"}, "scheduler": {"provider": "redis", "redis": {)" +
        fields + "}}}"));
  };
  BOOST_TEST(!compact(R"("compact": false)").redis.compact);
  BOOST_TEST(compact(R"("compact_after": "250ms")").redis.compact_after.count() == 250);
  BOOST_CHECK_EXCEPTION(
      compact(R"("compact_after": -1)"), corvo::config_error,
      [](const corvo::config_error& e) { return e.key() == "scheduler.redis.compact_after"; });
  BOOST_CHECK_EXCEPTION(
      compact(R"("compact": "maybe")"), corvo::config_error,
      [](const corvo::config_error& e) { return e.key() == "scheduler.redis.compact"; });
}

BOOST_AUTO_TEST_CASE(kafka_sink_options_from_configuration) {
  const auto cfg = corvo::config::from_string(R"({"redis": {"url": "redis://h:1"},
      "scheduler": {"provider": "redis-kafka", "namespace": "billing",
                    "kafka": {"topic": "billing.tasks", "consume": false, "max_attempts": 3,
                              "health_interval": "250ms"}},
      "kafka": {"bootstrap.servers": "broker1:9092"}})");
  const auto o = scheduler_options::from(cfg);
  BOOST_TEST((o.provider == provider::redis));
  BOOST_TEST((o.sink == sink_kind::kafka));
  BOOST_TEST(o.kafka_sink.topic == "billing.tasks");
  BOOST_TEST(o.kafka_sink.health_interval.count() == 250);
  BOOST_TEST(!o.kafka_consume);
  BOOST_TEST(o.kafka_worker.consumer.max_attempts == 3u);
  BOOST_TEST(o.kafka.get("bootstrap.servers").value_or("") == "broker1:9092");
  BOOST_TEST(o.kafka.get(corvo::kafka::client_role::consumer, "group.id").value_or("") ==
             "corvo.billing");
  // The sink can be chosen on its own; a Kafka sink without brokers is a clear error.
  const auto memory_kafka = scheduler_options::from(corvo::config::from_string(
      R"({"scheduler":{"sink":"kafka"},"kafka":{"bootstrap.servers":"embedded:1"}})"));
  BOOST_TEST((memory_kafka.provider == provider::memory));
  BOOST_TEST((memory_kafka.sink == sink_kind::kafka));
  BOOST_CHECK_EXCEPTION(scheduler_options::from(corvo::config::from_string(
                            R"({"scheduler":{"provider":"redis-kafka"}})")),
                        corvo::config_error, [](const corvo::config_error& e) {
                          return e.key() == "kafka.bootstrap.servers";
                        });
  BOOST_CHECK_EXCEPTION(
      scheduler_options::from(corvo::config::from_string(
          R"({"scheduler":{"sink":"kafka","kafka":{"topic":""}},"kafka":{"bootstrap.servers":"b:9092"}})")),
      corvo::config_error,
      [](const corvo::config_error& e) { return e.key() == "scheduler.kafka.topic"; });
  BOOST_CHECK_EXCEPTION(
      scheduler_options::from(corvo::config::from_string(R"({"scheduler":{"sink":"sqs"}})")),
      corvo::config_error,
      [](const corvo::config_error& e) { return e.key() == "scheduler.sink"; });
}

namespace {

bool names(const corvo::config_error& e, const std::string& key, const std::string& text) {
  return e.key() == key && std::string(e.what()).find(text) != std::string::npos;
}

}  // namespace

// A typo in any key of the scheduler's sections is refused, naming the nearest known key.
BOOST_AUTO_TEST_CASE(unknown_scheduler_keys_are_refused) {
  const auto from = [](const char* json) {
    return scheduler_options::from(corvo::config::from_string(json));
  };
  BOOST_CHECK_EXCEPTION(from(R"({"scheduler": {"max_inflight": 5}})"), corvo::config_error,
                        [](const auto& e) {
                          return names(e, "scheduler.max_inflight", "did you mean 'max_in_flight'");
                        });
  BOOST_CHECK_EXCEPTION(from(R"({"scheduler": {"sink": "kafka", "kafka": {"topik": "t"}},
               "kafka": {"bootstrap.servers": "b:9092"}})"),
                        corvo::config_error, [](const auto& e) {
                          return names(e, "scheduler.kafka.topik", "did you mean 'topic'");
                        });
  // Every documented key is known (docs/scheduler.md's configuration block).
  BOOST_CHECK_NO_THROW(from(R"({"redis": {"url": "redis://h:1"},
      "scheduler": {"provider": "redis-kafka", "sink": "kafka", "namespace": "n", "shards": 4,
        "max_in_flight": 256, "claim_batch": 256, "lease": "30s", "max_sleep": "1s",
        "drain_timeout": "10s", "retry_initial": "1s", "retry_max": "5m", "priority_aging": "10s",
        "types": {"email.send": {"max_attempts": 8, "retry_initial": "2s"}},
        "events": {"enabled": false, "max_len": 10000},
        "kafka": {"topic": "t", "consume": true, "max_attempts": 5,
                  "dead_letter_topic": "{topic}.dlq", "health_interval": "500ms"}},
      "kafka": {"bootstrap.servers": "b:9092"}})"));
}

// The provider and the Redis settings must agree: no silent in-process store.
BOOST_AUTO_TEST_CASE(provider_and_redis_settings_must_agree) {
  const auto from = [](const char* json) {
    return scheduler_options::from(corvo::config::from_string(json));
  };
  // redis without a Redis address
  BOOST_CHECK_EXCEPTION(from(R"({"scheduler": {"provider": "redis"}})"), corvo::config_error,
                        [](const auto& e) { return names(e, "redis.url", "redis provider"); });
  // Redis settings, provider left to its default (memory): say which one is meant
  BOOST_CHECK_EXCEPTION(from(R"({"redis": {"url": "redis://h:1"}, "scheduler": {"shards": 4}})"),
                        corvo::config_error,
                        [](const auto& e) { return names(e, "scheduler.provider", "in-process"); });
  // memory chosen explicitly beside an application's Redis section: fine
  BOOST_TEST(
      (from(R"({"redis": {"url": "redis://h:1"}, "scheduler": {"provider": "memory"}})").provider ==
       provider::memory));
  // A memory scheduler handed a Redis connection is a mistake, not a silent memory store.
  asio::io_context ctx;
  const auto url = redis::client_config::from_url("redis://127.0.0.1:1");
  redis::client conn(ctx.get_executor(), url);
  BOOST_CHECK_EXCEPTION(scheduler(ctx.get_executor(), scheduler_options{}, &conn, url),
                        std::invalid_argument, [](const std::invalid_argument& e) {
                          return std::string(e.what()).find("memory") != std::string::npos;
                        });
}

namespace {

void tag_invoke(json::value_from_tag, json::value& v, const greeting& g) {
  v = {{"name", g.name}};
}

// The call as a newcomer writes it: literals for id and type, a payload struct, no task
// aggregate. (Under ASan: GCC 12 destroys a `task{...}` temporary in co_await twice.)
asio::awaitable<void> schedule_naturally(scheduler& s, std::vector<std::string>& greeted) {
  auto ex = co_await asio::this_coro::executor;
  corvo::task_group group(ex);
  co_await group.spawn(run_scheduler(s));
  const greeting ada{"ada, with a name longer than the small-string buffer"};
  co_await s.schedule("greet-ada", "greet", ada, now() + 5ms, 2);
  const auto stored = co_await s.get("greet-ada");
  BOOST_REQUIRE(stored.has_value());
  BOOST_TEST(stored->max_attempts == 2u);
  BOOST_TEST(json::value_to<std::string>(stored->payload.at("name")) == ada.name);
  for (int i = 0; i < 2000 && greeted.empty(); ++i) {
    co_await corvo::sleep_for(2ms);
  }
  group.cancel();
  try {
    co_await group.join();
  } catch (const boost::system::system_error&) {
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(schedule_by_id_type_payload_and_due) {
  asio::io_context ctx;
  scheduler s(ctx.get_executor(), scheduler_options{});
  std::vector<std::string> greeted;
  s.handlers().on<greeting>("greet", greeter{&greeted});
  corvo::test::run(ctx, schedule_naturally(s, greeted));
  BOOST_TEST((greeted ==
              std::vector<std::string>{"ada, with a name longer than the small-string buffer"}));
}

BOOST_AUTO_TEST_CASE(memory_provider_runs_typed_handlers_in_due_order) {
  asio::io_context ctx;
  // One shard: claims return due tasks in due order even when a loaded machine starts the
  // dispatcher after all three fell due (across shards, order is only by due time).
  scheduler s(ctx.get_executor(),
              scheduler_options::from(corvo::config::from_string(R"({"scheduler":{"shards":1}})")));
  std::vector<std::string> greeted;
  s.handlers().on<greeting>("greet", greeter{&greeted});
  corvo::test::run(ctx, greet_three(s, greeted));
  BOOST_TEST((greeted == std::vector<std::string>{"edsger", "grace", "ada"}));
}

BOOST_AUTO_TEST_CASE(redis_provider_runs_typed_handlers_in_due_order) {
  corvo::test::redis_server server;
  asio::io_context ctx;
  const auto url = redis::client_config::from_url(server.url());
  redis::client conn(ctx.get_executor(), url);
  asio::co_spawn(ctx, conn.run(), [](std::exception_ptr) {});
  const auto cfg = corvo::config::from_string(R"({"redis":{"url":")" + server.url() +
                                              R"("},"scheduler":{"provider":"redis","shards":1}})");
  scheduler s(ctx.get_executor(), scheduler_options::from(cfg), &conn, url);
  std::vector<std::string> greeted;
  s.handlers().on<greeting>("greet", greeter{&greeted});
  corvo::test::run(ctx, greet_three(s, greeted), [&] { conn.cancel(); });
  BOOST_TEST((greeted == std::vector<std::string>{"edsger", "grace", "ada"}));
  BOOST_CHECK_THROW(scheduler(ctx.get_executor(), scheduler_options::from(cfg)),
                    std::invalid_argument);
}
