// watch_streams: the stream collectors (groups, pending, lag, dead letters).
#include <corvo/ops/collectors.hpp>
#include <corvo/stream/admin.hpp>

namespace corvo::ops {

namespace {

double as_double(std::uint64_t v) {
  return static_cast<double>(v);
}

asio::awaitable<void> collect_streams(registry* reg, stream::admin* a,
                                      std::vector<std::string> streams) {
  for (const auto& name : streams) {
    auto info = co_await a->info(name);
    reg->gauge("corvo_stream_length", "Entries in the stream", {{"stream", name}})
        .set(as_double(info.length));
    for (const auto& g : info.groups) {
      label_set l{{"stream", name}, {"group", g.name}};
      reg->gauge("corvo_stream_group_pending", "Entries delivered to the group, not acked", l)
          .set(as_double(g.pending));
      reg->gauge("corvo_stream_group_consumers", "Consumers of the group", l)
          .set(as_double(g.consumers));
      if (g.lag) {
        reg->gauge("corvo_stream_group_lag", "Entries not yet delivered to the group", l)
            .set(as_double(*g.lag));
      }
    }
  }
}

}  // namespace

void watch_streams(registry& metrics, stream::admin& admin, std::vector<std::string> streams) {
  registry* reg = &metrics;
  stream::admin* a = &admin;
  metrics.add_async_collector([reg, a, streams] { return collect_streams(reg, a, streams); });
}

}  // namespace corvo::ops
