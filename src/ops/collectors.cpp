#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <corvo/health/monitor.hpp>
#include <corvo/kafka/consumer.hpp>
#include <corvo/kafka/producer.hpp>
#include <corvo/ops/collectors.hpp>
#include <corvo/pubsub/subscriber.hpp>
#include <corvo/queue/admin.hpp>
#include <corvo/queue/handler.hpp>
#include <corvo/redis/client.hpp>
#include <corvo/redis/cluster/cluster_client.hpp>
#include <corvo/redis/connection.hpp>
#include <corvo/schedule/dispatcher.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <corvo/schedule/store.hpp>
#include <corvo/stream/consumer.hpp>

namespace corvo::ops {

namespace {

double as_double(std::uint64_t v) {
  return static_cast<double>(v);
}

// Named coroutines with parameters by value (not capturing coroutine lambdas: DESIGN §9).
struct store_gauges {
  gauge* scheduled;
  gauge* due;
  gauge* in_flight;
  gauge* dead;
};

asio::awaitable<void> collect_store(schedule::store* store, store_gauges g) {
  auto st = co_await store->stats();
  g.scheduled->set(as_double(st.scheduled));
  g.due->set(as_double(st.due_now));
  g.in_flight->set(as_double(st.in_flight));
  g.dead->set(as_double(st.dead));
}

struct queue_gauges {
  gauge* depth;
  gauge* processing;
  gauge* dead;
};

asio::awaitable<void> collect_queue(redis::client* r, std::string queue, queue_gauges g) {
  auto info = co_await queue::inspect(*r, queue);
  std::size_t in_processing = 0;
  for (const auto& c : info.consumers) {
    in_processing += c.processing;
  }
  g.depth->set(as_double(info.depth));
  g.processing->set(as_double(in_processing));
  g.dead->set(as_double(info.dead));
}

}  // namespace

// ---- scheduler ----------------------------------------------------------------------------

void watch_scheduler(registry& metrics, schedule::scheduler& sched, std::string ns) {
  watch_scheduler(metrics, sched.dispatcher(), sched.tasks(), std::move(ns));
}

void watch_scheduler(registry& metrics, schedule::dispatcher& dispatch, schedule::store& tasks,
                     std::string ns) {
  label_set l{{"namespace", ns}};
  struct series {
    counter& claimed;
    counter& acked;
    counter& nacked;
    counter& dead;
    counter& stale;
    counter& lease;
    counter& store_errors;
  };
  series s{
      metrics.counter("corvo_schedule_claimed_total", "Tasks claimed by this process", l),
      metrics.counter("corvo_schedule_acked_total", "Runs acknowledged (succeeded)", l),
      metrics.counter("corvo_schedule_nacked_total", "Runs failed and sent back with a backoff", l),
      metrics.counter("corvo_schedule_dead_lettered_total", "Runs sent to the dead-letter set", l),
      metrics.counter("corvo_schedule_stale_acks_total",
                      "Acks and nacks refused because the lease had been lost", l),
      metrics.counter("corvo_schedule_lease_expiries_total",
                      "Runs cancelled because their lease was lost", l),
      metrics.counter("corvo_schedule_store_errors_total", "Store calls that failed", l),
  };
  const schedule::dispatcher* d = &dispatch;
  metrics.add_collector([s, d] {
    const auto& st = d->stats();
    s.claimed.set_total(as_double(st.claimed));
    s.acked.set_total(as_double(st.succeeded));
    s.nacked.set_total(as_double(st.retried));
    s.dead.set_total(as_double(st.dead_lettered));
    s.stale.set_total(as_double(st.stale));
    s.lease.set_total(as_double(st.lease_lost));
    s.store_errors.set_total(as_double(st.store_errors));
  });

  constexpr std::string_view tasks_help = "Tasks of the namespace by state (from the store)";
  auto state = [&](const char* name) -> gauge& {
    return metrics.gauge("corvo_schedule_tasks", tasks_help, {{"namespace", ns}, {"state", name}});
  };
  store_gauges g{&state("scheduled"), &state("due"), &state("in_flight"), &state("dead")};
  schedule::store* store = &tasks;
  metrics.add_async_collector([store, g] { return collect_store(store, g); });

  registry* reg = &metrics;
  dispatch.on_start([reg, ns](const schedule::claimed_task& t) {
    auto late = schedule::now() - t.work.due;
    reg->histogram("corvo_schedule_lateness_seconds",
                   "Handler start minus due time, per namespace and task type", latency_buckets(),
                   {{"namespace", ns}, {"type", t.work.type}})
        .observe(std::chrono::duration<double>(late).count());
  });
}

// ---- streams ------------------------------------------------------------------------------

void watch_stream_consumer(registry& metrics, const stream::consumer& consumer) {
  label_set l{{"group", consumer.options().group}, {"consumer", consumer.name()}};
  counter* handled = &metrics.counter("corvo_stream_entries_handled_total",
                                      "Stream entries handled successfully", l);
  counter* failed =
      &metrics.counter("corvo_stream_entries_failed_total", "Stream handler runs that failed", l);
  counter* retried = &metrics.counter("corvo_stream_entries_retried_total",
                                      "Failed stream entries taken again for a retry", l);
  counter* dead = &metrics.counter("corvo_stream_entries_dead_lettered_total",
                                   "Stream entries moved to the dead-letter stream", l);
  counter* reclaimed = &metrics.counter("corvo_stream_entries_reclaimed_total",
                                        "Stream entries taken over from other consumers", l);
  const stream::consumer* c = &consumer;
  metrics.add_collector([=] {
    const auto& st = c->stats();
    handled->set_total(as_double(st.handled));
    failed->set_total(as_double(st.failed));
    retried->set_total(as_double(st.retried));
    dead->set_total(as_double(st.dead_lettered));
    reclaimed->set_total(as_double(st.reclaimed));
  });
}

// ---- pub/sub and queues -------------------------------------------------------------------

void watch_subscriber(registry& metrics, const pubsub::subscriber& sub, std::string name) {
  label_set l{{"subscriber", name}};
  counter* received =
      &metrics.counter("corvo_pubsub_received_total", "Messages read from Redis", l);
  counter* delivered =
      &metrics.counter("corvo_pubsub_delivered_total", "Messages handed to the application", l);
  counter* dropped =
      &metrics.counter("corvo_pubsub_dropped_total", "Messages dropped by the overflow policy", l);
  counter* resubscribed = &metrics.counter("corvo_pubsub_resubscriptions_total",
                                           "Subscriptions restored after a reconnect", l);
  gauge* buffered = &metrics.gauge("corvo_pubsub_buffered", "Messages waiting for receive()", l);
  gauge* lag = &metrics.gauge("corvo_pubsub_lag_seconds", "Age of the oldest buffered message", l);
  const pubsub::subscriber* s = &sub;
  metrics.add_collector([=] {
    auto st = s->stats();
    received->set_total(as_double(st.received));
    delivered->set_total(as_double(st.delivered));
    dropped->set_total(as_double(st.dropped));
    resubscribed->set_total(as_double(st.resubscriptions));
    buffered->set(as_double(st.buffered));
    lag->set(std::chrono::duration<double>(st.oldest_age).count());
  });
}

void watch_queue_consumer(registry& metrics, const queue::queue_stats& stats, std::string queue) {
  label_set l{{"queue", queue}};
  counter* taken = &metrics.counter("corvo_queue_items_taken_total", "Items taken by consumers", l);
  counter* ok = &metrics.counter("corvo_queue_items_succeeded_total", "Items handled", l);
  counter* retried =
      &metrics.counter("corvo_queue_items_retried_total", "Items failed and put back", l);
  counter* dead = &metrics.counter("corvo_queue_items_dead_lettered_total",
                                   "Items sent to the dead letters", l);
  counter* stale = &metrics.counter("corvo_queue_items_stale_total",
                                    "Acks refused: the reaper had taken the item", l);
  const queue::queue_stats* st = &stats;
  metrics.add_collector([=] {
    taken->set_total(as_double(st->taken));
    ok->set_total(as_double(st->succeeded));
    retried->set_total(as_double(st->retried));
    dead->set_total(as_double(st->dead_lettered));
    stale->set_total(as_double(st->stale));
  });
}

void watch_queue(registry& metrics, redis::client& redis, std::string queue) {
  label_set l{{"queue", queue}};
  gauge* depth = &metrics.gauge("corvo_queue_depth", "Items waiting in the queue", l);
  gauge* processing =
      &metrics.gauge("corvo_queue_processing", "Items in consumers' processing lists", l);
  gauge* dead = &metrics.gauge("corvo_queue_dead", "Dead letters kept", l);
  redis::client* r = &redis;
  queue_gauges g{depth, processing, dead};
  metrics.add_async_collector([r, queue, g] { return collect_queue(r, queue, g); });
}

// ---- Kafka --------------------------------------------------------------------------------

void watch_kafka_producer(registry& metrics, const kafka::producer& producer, std::string client) {
  label_set l{{"client", client}};
  counter* produced =
      &metrics.counter("corvo_kafka_produced_total", "Messages delivered to Kafka", l);
  counter* failed =
      &metrics.counter("corvo_kafka_delivery_failures_total", "Sends completed with an error", l);
  gauge* in_flight = &metrics.gauge("corvo_kafka_in_flight", "Sends not completed yet", l);
  const kafka::producer* p = &producer;
  metrics.add_collector([=] {
    auto st = p->stats();
    produced->set_total(as_double(st.delivered));
    failed->set_total(as_double(st.failed));
    in_flight->set(as_double(st.in_flight));
  });
}

void watch_kafka_consumer(registry& metrics, const kafka::consumer& consumer, std::string client) {
  label_set l{{"client", client}};
  counter* consumed =
      &metrics.counter("corvo_kafka_consumed_total", "Messages handled successfully", l);
  counter* failed =
      &metrics.counter("corvo_kafka_handler_failures_total", "Handler calls that failed", l);
  counter* dead = &metrics.counter("corvo_kafka_dead_lettered_total",
                                   "Messages published to the dead-letter topic", l);
  const kafka::consumer* c = &consumer;
  metrics.add_collector([=] {
    auto st = c->stats();
    consumed->set_total(as_double(st.handled));
    failed->set_total(as_double(st.failed_attempts));
    dead->set_total(as_double(st.dead_lettered));
  });
}

void record_kafka_statistics(registry& metrics, std::string_view statistics_json,
                             std::string_view client) {
  boost::system::error_code ec;
  auto doc = boost::json::parse(statistics_json, ec);
  if (ec || !doc.is_object()) {
    return;
  }
  const auto* topics = doc.as_object().if_contains("topics");
  if (topics == nullptr || !topics->is_object()) {
    return;
  }
  for (const auto& [topic, t] : topics->as_object()) {
    const auto* partitions = t.is_object() ? t.as_object().if_contains("partitions") : nullptr;
    if (partitions == nullptr || !partitions->is_object()) {
      continue;
    }
    for (const auto& [partition, p] : partitions->as_object()) {
      if (partition == "-1" || !p.is_object()) {
        continue;  // librdkafka's internal UA partition
      }
      const auto* lag = p.as_object().if_contains("consumer_lag");
      if (lag == nullptr || !lag->is_int64() || lag->as_int64() < 0) {
        continue;  // -1: not consumed by this client
      }
      metrics
          .gauge("corvo_kafka_consumer_lag", "Messages behind the partition's high watermark",
                 {{"client", std::string(client)},
                  {"topic", std::string(topic)},
                  {"partition", std::string(partition)}})
          .set(static_cast<double>(lag->as_int64()));
    }
  }
}

// ---- Redis --------------------------------------------------------------------------------

void watch_redis(registry& metrics, redis::client& client, std::string name) {
  label_set l{{"client", name}};
  counter* requests =
      &metrics.counter("corvo_redis_requests_total", "Requests completed successfully", l);
  counter* connects = &metrics.counter("corvo_redis_connects_total", "Successful connections", l);
  counter* connect_failures =
      &metrics.counter("corvo_redis_connect_failures_total", "Connection attempts that failed", l);
  counter* timeouts = &metrics.counter("corvo_redis_request_timeouts_total",
                                       "Connections dropped for a missed reply deadline", l);
  counter* moved = &metrics.counter("corvo_redis_moved_total", "MOVED replies followed", l);
  counter* ask = &metrics.counter("corvo_redis_ask_total", "ASK replies followed", l);
  redis::client* c = &client;
  metrics.add_collector([=] {
    if (auto* conn = c->standalone()) {
      const auto& st = conn->stats();
      requests->set_total(as_double(st.requests));
      connects->set_total(as_double(st.connects));
      connect_failures->set_total(as_double(st.connect_failures));
      timeouts->set_total(as_double(st.request_timeouts));
    } else if (auto* cluster = c->cluster()) {
      const auto& st = cluster->stats();
      moved->set_total(as_double(st.moved));
      ask->set_total(as_double(st.ask));
    }
  });
}

// ---- health -------------------------------------------------------------------------------

void watch_health(registry& metrics, const health::monitor& monitor) {
  registry* reg = &metrics;
  const health::monitor* m = &monitor;
  metrics.add_collector([reg, m] {
    for (const auto& d : m->state()) {
      label_set l{{"dependency", d.name}};
      double up = d.state == health::status::up ? 1 : d.state == health::status::degraded ? 0.5 : 0;
      reg->gauge("corvo_health_up", "1 up, 0.5 degraded, 0 down", l).set(up);
      for (auto s : {health::status::up, health::status::degraded, health::status::down}) {
        reg->gauge("corvo_health_state", "1 for the dependency's current state",
                   {{"dependency", d.name}, {"state", std::string(health::to_string(s))}})
            .set(d.state == s ? 1 : 0);
      }
      reg->counter("corvo_health_transitions_total", "State changes of the dependency", l)
          .set_total(as_double(d.stats.transitions));
      reg->counter("corvo_health_failures_total", "Failed probes and reported failures", l)
          .set_total(as_double(d.stats.failures));
    }
  });
}

}  // namespace corvo::ops
