#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
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
#include <corvo/schedule/event_counts.hpp>
#include <corvo/schedule/scheduler.hpp>
#include <corvo/schedule/store.hpp>
#include <corvo/stream/consumer.hpp>
#include <map>
#include <memory>

namespace corvo::ops {

namespace {

double as_double(std::uint64_t v) {
  return static_cast<double>(v);
}

// One row of a table that mirrors a stats struct into series: the metric, its help text and
// the field it copies. Counters mirror monotonic counts (set_total), gauges current values.
template <class Stats>
struct stat_row {
  metric_type type;  // counter or gauge
  std::string_view name;
  std::string_view help;
  std::uint64_t Stats::*field;  // std::size_t fields too: the same type on every target
};

template <class Stats>
constexpr stat_row<Stats> counter_row(std::string_view name, std::string_view help,
                                      std::uint64_t Stats::*field) {
  return {metric_type::counter, name, help, field};
}

template <class Stats>
constexpr stat_row<Stats> gauge_row(std::string_view name, std::string_view help,
                                    std::uint64_t Stats::*field) {
  return {metric_type::gauge, name, help, field};
}

// The series of each row, labelled `labels`, bound to their fields.
template <class Stats>
struct bound_rows {
  struct row {
    counter* c = nullptr;
    gauge* g = nullptr;
    std::uint64_t Stats::*field;
  };
  std::vector<row> rows;

  void copy(const Stats& st) const {
    for (const auto& r : rows) {
      double v = as_double(st.*(r.field));
      if (r.c != nullptr) {
        r.c->set_total(v);
      } else {
        r.g->set(v);
      }
    }
  }
};

template <class Stats, std::size_t N>
bound_rows<Stats> bind_rows(registry& metrics, const std::array<stat_row<Stats>, N>& table,
                            const label_set& labels) {
  bound_rows<Stats> b;
  for (const auto& r : table) {
    if (r.type == metric_type::counter) {
      b.rows.push_back({&metrics.counter(r.name, r.help, labels), nullptr, r.field});
    } else {
      b.rows.push_back({nullptr, &metrics.gauge(r.name, r.help, labels), r.field});
    }
  }
  return b;
}

// Registers the table's series and a collector copying `read()` (a Stats, or a reference to
// one) into them at each scrape.
template <class Stats, std::size_t N, class Read>
void mirror(registry& metrics, const std::array<stat_row<Stats>, N>& table, const label_set& labels,
            Read read) {
  metrics.add_collector([b = bind_rows(metrics, table, labels), read] { b.copy(read()); });
}

// ---- the tables -----------------------------------------------------------------------------

using dispatcher_stats = schedule::dispatcher_stats;
constexpr std::array scheduler_rows{
    counter_row("corvo_schedule_claimed_total", "Tasks claimed by this process",
                &dispatcher_stats::claimed),
    counter_row("corvo_schedule_acked_total", "Runs acknowledged (succeeded)",
                &dispatcher_stats::succeeded),
    counter_row("corvo_schedule_nacked_total", "Runs failed and sent back with a backoff",
                &dispatcher_stats::retried),
    counter_row("corvo_schedule_dead_lettered_total", "Runs sent to the dead-letter set",
                &dispatcher_stats::dead_lettered),
    counter_row("corvo_schedule_stale_acks_total",
                "Acks and nacks refused because the lease had been lost", &dispatcher_stats::stale),
    counter_row("corvo_schedule_lease_expiries_total",
                "Runs cancelled because their lease was lost", &dispatcher_stats::lease_lost),
    counter_row("corvo_schedule_store_errors_total", "Store calls that failed",
                &dispatcher_stats::store_errors),
};

using stream_stats = stream::consumer_stats;
constexpr std::array stream_consumer_rows{
    counter_row("corvo_stream_entries_handled_total", "Stream entries handled successfully",
                &stream_stats::handled),
    counter_row("corvo_stream_entries_failed_total", "Stream handler runs that failed",
                &stream_stats::failed),
    counter_row("corvo_stream_entries_retried_total",
                "Failed stream entries taken again for a retry", &stream_stats::retried),
    counter_row("corvo_stream_entries_dead_lettered_total",
                "Stream entries moved to the dead-letter stream", &stream_stats::dead_lettered),
    counter_row("corvo_stream_entries_reclaimed_total",
                "Stream entries taken over from other consumers", &stream_stats::reclaimed),
};

using subscriber_stats = pubsub::subscriber_stats;
constexpr std::array subscriber_rows{
    counter_row("corvo_pubsub_received_total", "Messages read from Redis",
                &subscriber_stats::received),
    counter_row("corvo_pubsub_delivered_total", "Messages handed to the application",
                &subscriber_stats::delivered),
    counter_row("corvo_pubsub_dropped_total", "Messages dropped by the overflow policy",
                &subscriber_stats::dropped),
    counter_row("corvo_pubsub_resubscriptions_total", "Subscriptions restored after a reconnect",
                &subscriber_stats::resubscriptions),
    gauge_row("corvo_pubsub_buffered", "Messages waiting for receive()",
              &subscriber_stats::buffered),
};

using queue_stats = queue::queue_stats;
constexpr std::array queue_consumer_rows{
    counter_row("corvo_queue_items_taken_total", "Items taken by consumers", &queue_stats::taken),
    counter_row("corvo_queue_takes_total", "Redis calls that took items (batches)",
                &queue_stats::takes),
    counter_row("corvo_queue_items_succeeded_total", "Items handled", &queue_stats::succeeded),
    counter_row("corvo_queue_items_retried_total", "Items failed and put back",
                &queue_stats::retried),
    counter_row("corvo_queue_items_dead_lettered_total", "Items sent to the dead letters",
                &queue_stats::dead_lettered),
    counter_row("corvo_queue_items_stale_total", "Acks refused: the reaper had taken the item",
                &queue_stats::stale),
};

using producer_stats = kafka::producer_stats;
constexpr std::array kafka_producer_rows{
    counter_row("corvo_kafka_produced_total", "Messages delivered to Kafka",
                &producer_stats::delivered),
    counter_row("corvo_kafka_delivery_failures_total", "Sends completed with an error",
                &producer_stats::failed),
    gauge_row("corvo_kafka_in_flight", "Sends not completed yet", &producer_stats::in_flight),
};

using kafka_consumer_stats = kafka::consumer_stats;
constexpr std::array kafka_consumer_rows{
    counter_row("corvo_kafka_consumed_total", "Messages handled successfully",
                &kafka_consumer_stats::handled),
    counter_row("corvo_kafka_handler_failures_total", "Handler calls that failed",
                &kafka_consumer_stats::failed_attempts),
    counter_row("corvo_kafka_dead_lettered_total", "Messages published to the dead-letter topic",
                &kafka_consumer_stats::dead_lettered),
};

using connection_stats = redis::connection_stats;
constexpr std::array redis_connection_rows{
    counter_row("corvo_redis_requests_total", "Requests completed successfully",
                &connection_stats::requests),
    counter_row("corvo_redis_connects_total", "Successful connections",
                &connection_stats::connects),
    counter_row("corvo_redis_connect_failures_total", "Connection attempts that failed",
                &connection_stats::connect_failures),
    counter_row("corvo_redis_request_timeouts_total",
                "Connections dropped for a missed reply deadline",
                &connection_stats::request_timeouts),
    counter_row("corvo_redis_resets_total",
                "Connections dropped by their owner (a health probe found the server hung)",
                &connection_stats::resets),
    counter_row("corvo_redis_request_errors_total",
                "Requests completed with an error (cancellations excluded)",
                &connection_stats::request_errors),
};

// The same per node of a cluster (label `node`), under names of their own so that a sum over
// a client's series does not count a request twice.
constexpr std::array redis_node_rows{
    counter_row("corvo_redis_node_requests_total", "Requests a cluster node completed",
                &connection_stats::requests),
    counter_row("corvo_redis_node_request_errors_total",
                "Requests to a cluster node completed with an error",
                &connection_stats::request_errors),
    counter_row("corvo_redis_node_connects_total", "Successful connections to a cluster node",
                &connection_stats::connects),
    counter_row("corvo_redis_node_connect_failures_total",
                "Connection attempts to a cluster node that failed",
                &connection_stats::connect_failures),
    counter_row("corvo_redis_node_request_timeouts_total",
                "Connections to a cluster node dropped for a missed reply deadline",
                &connection_stats::request_timeouts),
    counter_row("corvo_redis_node_resets_total",
                "Connections to a cluster node dropped by their owner (the node found hung)",
                &connection_stats::resets),
};

using cluster_stats = redis::cluster_stats;
constexpr std::array redis_cluster_rows{
    counter_row("corvo_redis_moved_total", "MOVED replies followed", &cluster_stats::moved),
    counter_row("corvo_redis_ask_total", "ASK replies followed", &cluster_stats::ask),
};

// A Redis client's connection counters (a cluster's summed over its nodes) and its request
// latency histogram.
struct redis_series {
  bound_rows<connection_stats> rows;
  histogram* latency;

  void copy(const connection_stats& st) const {
    rows.copy(st);
    latency->set_counts(st.latency_counts, std::chrono::duration<double>(st.latency_sum).count());
  }
};

redis_series bind_redis(registry& metrics, const label_set& labels) {
  std::vector<double> bounds;
  for (auto b : redis::request_latency_bounds) {
    bounds.push_back(std::chrono::duration<double>(b).count());
  }
  return {
      bind_rows(metrics, redis_connection_rows, labels),
      &metrics.histogram("corvo_redis_request_duration_seconds",
                         "Latency of successful requests, exec() to the reply", bounds, labels)};
}

// A cluster client's totals and per-node series (created as nodes appear).
struct cluster_series {
  registry* metrics;
  std::string client;
  const redis::cluster_client* cluster;
  redis_series totals;
  std::map<std::string, bound_rows<connection_stats>> nodes;

  void collect() {
    connection_stats sum;
    for (const auto& [address, st] : cluster->node_stats()) {
      sum += st;
      auto it = nodes.find(address);
      if (it == nodes.end()) {
        const label_set l{{"client", client}, {"node", address}};
        it = nodes.emplace(address, bind_rows(*metrics, redis_node_rows, l)).first;
      }
      it->second.copy(st);
    }
    totals.copy(sum);
  }
};

// ---- asynchronous collectors ----------------------------------------------------------------
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
  registry* reg = &metrics;
  const schedule::scheduler* s = &sched;
  metrics.add_collector([reg, s, ns] {
    for (const auto& [type, count] : s->scheduled_by_type()) {
      reg->counter("corvo_schedule_scheduled_total",
                   "Tasks scheduled through this process's scheduler, per type",
                   {{"namespace", ns}, {"type", type}})
          .set_total(as_double(count));
    }
  });
  watch_scheduler(metrics, sched.dispatcher(), sched.tasks(), std::move(ns));
}

void watch_scheduler(registry& metrics, schedule::dispatcher& dispatch, schedule::store& tasks,
                     std::string ns) {
  const schedule::dispatcher* d = &dispatch;
  mirror(metrics, scheduler_rows, {{"namespace", ns}},
         [d]() -> const dispatcher_stats& { return d->stats(); });

  constexpr std::string_view tasks_help = "Tasks of the namespace by state (from the store)";
  auto state = [&](const char* name) -> gauge* {
    return &metrics.gauge("corvo_schedule_tasks", tasks_help, {{"namespace", ns}, {"state", name}});
  };
  store_gauges g{state("scheduled"), state("due"), state("in_flight"), state("dead")};
  schedule::store* store = &tasks;
  metrics.add_async_collector([store, g] { return collect_store(store, g); });

  // Task events this process's store wrote, every kind (zero while events are off).
  std::array<counter*, 6> events{};
  for (std::size_t k = 0; k < events.size(); ++k) {
    const auto kind = static_cast<schedule::event_kind>(k);
    events[k] = &metrics.counter("corvo_schedule_events_total",
                                 "Task events written by this process's store, per kind",
                                 {{"namespace", ns}, {"kind", std::string(to_string(kind))}});
  }
  metrics.add_collector([store, events] {
    const auto written = schedule::events_written(*store);
    for (std::size_t k = 0; k < events.size(); ++k) {
      events[k]->set_total(as_double(written.by_kind[k]));
    }
  });

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
  const stream::consumer* c = &consumer;
  mirror(metrics, stream_consumer_rows,
         {{"group", consumer.options().group}, {"consumer", consumer.name()}},
         [c]() -> const stream_stats& { return c->stats(); });
}

// ---- pub/sub and queues -------------------------------------------------------------------

void watch_subscriber(registry& metrics, const pubsub::subscriber& sub, std::string name) {
  label_set l{{"subscriber", name}};
  const pubsub::subscriber* s = &sub;
  mirror(metrics, subscriber_rows, l, [s] { return s->stats(); });
  gauge* lag = &metrics.gauge("corvo_pubsub_lag_seconds", "Age of the oldest buffered message", l);
  metrics.add_collector(
      [s, lag] { lag->set(std::chrono::duration<double>(s->stats().oldest_age).count()); });
}

void watch_queue_consumer(registry& metrics, const queue::queue_stats& stats, std::string queue) {
  const queue::queue_stats* st = &stats;
  mirror(metrics, queue_consumer_rows, {{"queue", queue}},
         [st]() -> const queue_stats& { return *st; });
}

void watch_queue(registry& metrics, redis::client& redis, std::string queue) {
  label_set l{{"queue", queue}};
  queue_gauges g{
      &metrics.gauge("corvo_queue_depth", "Items waiting in the queue", l),
      &metrics.gauge("corvo_queue_processing", "Items in consumers' processing lists", l),
      &metrics.gauge("corvo_queue_dead", "Dead letters kept", l)};
  redis::client* r = &redis;
  metrics.add_async_collector([r, queue, g] { return collect_queue(r, queue, g); });
}

// ---- Kafka --------------------------------------------------------------------------------

void watch_kafka_producer(registry& metrics, const kafka::producer& producer, std::string client) {
  const kafka::producer* p = &producer;
  mirror(metrics, kafka_producer_rows, {{"client", client}}, [p] { return p->stats(); });
}

void watch_kafka_consumer(registry& metrics, const kafka::consumer& consumer, std::string client) {
  const kafka::consumer* c = &consumer;
  mirror(metrics, kafka_consumer_rows, {{"client", client}}, [c] { return c->stats(); });
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
  if (auto* conn = client.standalone()) {
    metrics.add_collector([s = bind_redis(metrics, l), conn] { s.copy(conn->stats()); });
  } else if (auto* cluster = client.cluster()) {
    mirror(metrics, redis_cluster_rows, l,
           [cluster]() -> const cluster_stats& { return cluster->stats(); });
    auto series = std::make_shared<cluster_series>(
        cluster_series{&metrics, name, cluster, bind_redis(metrics, l), {}});
    metrics.add_collector([series] { series->collect(); });
  }
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
