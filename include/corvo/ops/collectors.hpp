#pragma once
// Metrics of the corvo layers, taken from the counters each layer already keeps (the *_stats
// structs) at scrape time, plus the few that need an observer (lateness). Every watch_*
// function registers its series in `metrics` and a collector that refreshes them; the
// watched object must outlive every later scrape of the registry (register it where the
// object lives, next to the ops server). Names and labels are listed in docs/ops.md.
//
//   ops::watch_scheduler(metrics, sched, "mail");     // dispatcher counters, store gauges,
//                                                      // lateness histogram per type
//   ops::watch_health(metrics, app.monitor());

#include <corvo/ops/metrics.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace corvo::health {
class monitor;
}
namespace corvo::schedule {
class scheduler;
class dispatcher;
class store;
}  // namespace corvo::schedule
namespace corvo::stream {
class consumer;
class admin;
}  // namespace corvo::stream
namespace corvo::pubsub {
class subscriber;
}
namespace corvo::queue {
struct queue_stats;
}
namespace corvo::kafka {
class producer;
class consumer;
}  // namespace corvo::kafka
namespace corvo::redis {
class client;
}

namespace corvo::ops {

/// Scheduler of namespace `ns`: corvo_schedule_{claimed,acked,nacked,dead_lettered,stale_acks,
/// lease_expiries,store_errors}_total from dispatcher_stats; corvo_schedule_tasks{state=
/// scheduled|due|in_flight|dead} from store::stats() (one query per scrape); and
/// corvo_schedule_lateness_seconds{namespace,type}, handler start − due time, observed by a
/// dispatcher start observer; corvo_schedule_scheduled_total{namespace,type}, the tasks
/// scheduled through `sched` (scheduler::scheduled_by_type()); corvo_schedule_events_total
/// {namespace,kind}, the task events this process's store wrote, every kind (events_written;
/// zero while `scheduler.events.enabled` is off).
void watch_scheduler(registry& metrics, schedule::scheduler& sched, std::string ns);
/// The same from a dispatcher and its store (for code that builds them itself), without
/// corvo_schedule_scheduled_total.
void watch_scheduler(registry& metrics, schedule::dispatcher& dispatch, schedule::store& tasks,
                     std::string ns);

/// A stream consumer: corvo_stream_entries_{handled,failed,retried,dead_lettered,reclaimed}_total
/// {group, consumer} from stream::consumer_stats.
void watch_stream_consumer(registry& metrics, const stream::consumer& consumer);
/// Groups of `streams`: corvo_stream_length{stream}, corvo_stream_group_pending{stream,group},
/// corvo_stream_group_lag{stream,group} (lag only where Redis reports it),
/// corvo_stream_group_consumers, one XINFO query per stream per scrape.
void watch_streams(registry& metrics, stream::admin& admin, std::vector<std::string> streams);

/// A subscriber named `name`: corvo_pubsub_{received,delivered,dropped,resubscriptions}_total,
/// corvo_pubsub_buffered, corvo_pubsub_lag_seconds.
void watch_subscriber(registry& metrics, const pubsub::subscriber& sub, std::string name);

/// A queue consumer's counters (work_queue::stats(), reliable_queue::stats()):
/// corvo_queue_items_{taken,succeeded,retried,dead_lettered,stale}_total{queue}.
void watch_queue_consumer(registry& metrics, const queue::queue_stats& stats, std::string queue);
/// A queue's state in Redis (queue::inspect, one query per scrape): corvo_queue_depth,
/// corvo_queue_processing (items in consumers' processing lists), corvo_queue_dead.
void watch_queue(registry& metrics, redis::client& redis, std::string queue);

/// A Kafka producer: corvo_kafka_produced_total, corvo_kafka_delivery_failures_total,
/// corvo_kafka_in_flight{client}.
void watch_kafka_producer(registry& metrics, const kafka::producer& producer, std::string client);
/// A Kafka consumer: corvo_kafka_consumed_total, corvo_kafka_handler_failures_total,
/// corvo_kafka_dead_lettered_total{client}.
void watch_kafka_consumer(registry& metrics, const kafka::consumer& consumer, std::string client);
/// Reads consumer lag per partition from one librdkafka statistics document (hook it to an
/// on_statistics callback): corvo_kafka_consumer_lag{client,topic,partition}. Documents that
/// do not parse are ignored.
void record_kafka_statistics(registry& metrics, std::string_view statistics_json,
                             std::string_view client);

/// A Redis client named `name`: the counters
/// corvo_redis_{requests,request_errors,connects,connect_failures,request_timeouts,resets}_total
/// {client} (resets: client::reset_connections, e.g. by health::reset_when_down)
/// and the histogram corvo_redis_request_duration_seconds{client} (successful requests, exec()
/// to the reply, queueing included), of its connection, or of a cluster client's node
/// connections added up (a redirected request counts once per node it was sent to). A cluster
/// client also has corvo_redis_moved_total, corvo_redis_ask_total{client} and, per node,
/// corvo_redis_node_{requests,request_errors,connects,connect_failures,request_timeouts,resets}_total
/// {client,node} (node = "host:port"; a node that left the topology keeps its series).
/// Connections of `dedicated()` clients are not included: watch them under a name of their own.
void watch_redis(registry& metrics, redis::client& client, std::string name);

/// Health: corvo_health_up{dependency} (1 up, 0.5 degraded, 0 down),
/// corvo_health_state{dependency,state} (1 for the current state),
/// corvo_health_transitions_total{dependency}, corvo_health_failures_total{dependency}.
void watch_health(registry& metrics, const health::monitor& monitor);

}  // namespace corvo::ops
