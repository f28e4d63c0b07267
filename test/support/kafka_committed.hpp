#pragma once
// The offsets a Kafka consumer group committed, asked of the brokers by a throwaway
// librdkafka consumer that never joins the group. A blocking query: call it outside the
// io_context (or from a test thread).

#include <librdkafka/rdkafka.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace corvo::test {

/// The committed offset of each of the partitions 0 .. partitions-1 of `topic` for `group`
/// (RD_KAFKA_OFFSET_INVALID for a partition without one). Empty when the query failed (the
/// brokers did not answer within `timeout_ms`, or the consumer could not be created).
inline std::map<std::int32_t, std::int64_t> committed_offsets(const std::string& servers,
                                                              const std::string& group,
                                                              const std::string& topic,
                                                              int partitions = 1,
                                                              int timeout_ms = 10000) {
  std::array<char, 512> err{};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", servers.c_str(), err.data(), err.size()) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "group.id", group.c_str(), err.data(), err.size()) !=
          RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return {};
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err.data(), err.size());
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);  // rd_kafka_new takes conf only on success
    return {};
  }
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  }
  std::map<std::int32_t, std::int64_t> out;
  if (rd_kafka_committed(rk, list, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < list->cnt; ++i) {
      out[list->elems[i].partition] = list->elems[i].offset;
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  return out;
}

}  // namespace corvo::test
