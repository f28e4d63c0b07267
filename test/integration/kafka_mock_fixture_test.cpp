// corvo's embedded Kafka (librdkafka's mock cluster) behaves like a cluster to plain
// librdkafka clients: topics can be created, messages produced and consumed back, and a
// broker set down refuses service until it is set up again. Its brokers' connections have
// Nagle's algorithm off.

#include <arpa/inet.h>
#include <dirent.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <corvo/kafka/embedded_cluster.hpp>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using corvo::kafka::embedded_cluster;

namespace {

struct handle_deleter {
  void operator()(rd_kafka_t* handle) const { rd_kafka_destroy(handle); }
};
using handle_ptr = std::unique_ptr<rd_kafka_t, handle_deleter>;

struct message_deleter {
  void operator()(rd_kafka_message_t* message) const { rd_kafka_message_destroy(message); }
};
using message_ptr = std::unique_ptr<rd_kafka_message_t, message_deleter>;

struct partition_list_deleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};

// What the delivery report said about one message.
struct delivery {
  bool reported = false;
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::int64_t offset = -1;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void*) {
  auto* outcome = static_cast<delivery*>(message->_private);
  outcome->reported = true;
  outcome->error = message->err;
  outcome->offset = message->offset;
}

handle_ptr make_client(rd_kafka_type_t type, const std::map<std::string, std::string>& settings) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::array<char, 512> error{};
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error.data(), error.size()) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(error.data());
    }
  }
  if (type == RD_KAFKA_PRODUCER) {
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  }
  rd_kafka_t* handle = rd_kafka_new(type, conf, error.data(), error.size());
  if (handle == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(error.data());
  }
  return handle_ptr{handle};
}

handle_ptr make_producer(const embedded_cluster& cluster, const std::string& message_timeout_ms) {
  return make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", cluster.bootstrap_servers()},
                                         {"message.timeout.ms", message_timeout_ms},
                                         {"reconnect.backoff.ms", "10"},
                                         {"reconnect.backoff.max.ms", "100"}});
}

// Produces one message to partition 0 and waits for its delivery report.
delivery produce(rd_kafka_t* producer, const std::string& topic, const std::string& key,
                 const std::string& value) {
  delivery outcome;
  const auto error = rd_kafka_producev(
      producer, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(0),
      RD_KAFKA_V_KEY(key.data(), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&outcome), RD_KAFKA_V_END);
  BOOST_REQUIRE_MESSAGE(error == RD_KAFKA_RESP_ERR_NO_ERROR, rd_kafka_err2str(error));
  // flush serves the delivery report callback; the message timeout bounds it.
  while (!outcome.reported) {
    rd_kafka_flush(producer, 1000);
  }
  return outcome;
}

struct consumed {
  std::string key;
  std::string value;
  std::int64_t offset = -1;
};

// Reads partition 0 of `topic` from the beginning (assigned, no group join) until `count`
// messages arrived or 60 s passed.
std::vector<consumed> consume(const embedded_cluster& cluster, const std::string& topic,
                              std::size_t count) {
  auto consumer =
      make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", cluster.bootstrap_servers()},
                                      {"group.id", "corvo-fixture-test"},
                                      {"enable.auto.commit", "false"},
                                      {"session.timeout.ms", "6000"},
                                      {"fetch.wait.max.ms", "10"}});
  std::unique_ptr<rd_kafka_topic_partition_list_t, partition_list_deleter> assignment{
      rd_kafka_topic_partition_list_new(1)};
  rd_kafka_topic_partition_list_add(assignment.get(), topic.c_str(), 0)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  BOOST_REQUIRE(rd_kafka_assign(consumer.get(), assignment.get()) == RD_KAFKA_RESP_ERR_NO_ERROR);

  std::vector<consumed> messages;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
  while (messages.size() < count && std::chrono::steady_clock::now() < deadline) {
    message_ptr message{rd_kafka_consumer_poll(consumer.get(), 100)};
    if (!message || message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      continue;
    }
    messages.push_back({std::string(static_cast<const char*>(message->key), message->key_len),
                        std::string(static_cast<const char*>(message->payload), message->len),
                        message->offset});
  }
  rd_kafka_consumer_close(consumer.get());
  return messages;
}

std::uint16_t local_port(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof(address);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
      address.sin_family != AF_INET) {
    return 0;
  }
  return ntohs(address.sin_port);
}

std::uint16_t peer_port(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof(address);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
      address.sin_family != AF_INET) {
    return 0;
  }
  return ntohs(address.sin_port);
}

// The descriptor of this process whose TCP connection runs from `local` to `peer` (the
// mock broker's side of a client connection: the mock lives in this process), or -1.
int connection_from(std::uint16_t local, std::uint16_t peer) {
  DIR* fds = ::opendir("/proc/self/fd");
  if (fds == nullptr) {
    return -1;
  }
  int found = -1;
  while (const dirent* entry = ::readdir(fds)) {
    const int fd = std::atoi(entry->d_name);
    if (entry->d_name[0] != '.' && fd != ::dirfd(fds) && local_port(fd) == local &&
        peer_port(fd) == peer) {
      found = fd;
      break;
    }
  }
  ::closedir(fds);
  return found;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kafka_mock_fixture)

// librdkafka sets up the mock brokers' accepted sockets with the owning handle's
// configuration, where Nagle's algorithm is on by default: a small write behind an
// unacknowledged one then waited for the client's delayed ACK (about 40 ms on Linux; half of the
// bursts of a producer took 42-48 ms instead of 1.4 ms). The embedded cluster turns it off.
BOOST_AUTO_TEST_CASE(broker_connections_have_nagle_off) {
  embedded_cluster cluster{1};
  const auto& servers = cluster.bootstrap_servers();
  const auto broker_port =
      static_cast<std::uint16_t>(std::stoul(servers.substr(servers.rfind(':') + 1)));

  struct socket_guard {
    int fd;
    ~socket_guard() {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  };
  const socket_guard guard{::socket(AF_INET, SOCK_STREAM, 0)};
  const int client = guard.fd;
  BOOST_TEST_REQUIRE(client >= 0);
  sockaddr_in broker{};
  broker.sin_family = AF_INET;
  broker.sin_port = htons(broker_port);
  broker.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_TEST_REQUIRE(::connect(client, reinterpret_cast<sockaddr*>(&broker), sizeof(broker)) == 0);
  const auto client_port = local_port(client);

  // The mock's thread accepts the connection on its own time.
  int accepted = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((accepted = connection_from(broker_port, client_port)) < 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  BOOST_TEST_REQUIRE(accepted >= 0, "the mock broker did not accept the connection");
  int no_delay = 0;
  socklen_t length = sizeof(no_delay);
  BOOST_TEST_REQUIRE(::getsockopt(accepted, IPPROTO_TCP, TCP_NODELAY, &no_delay, &length) == 0);
  BOOST_TEST(no_delay != 0);
}

BOOST_AUTO_TEST_CASE(cluster_reports_its_brokers_and_validates_arguments) {
  embedded_cluster cluster{3};
  BOOST_TEST(cluster.broker_count() == 3U);
  BOOST_TEST(cluster.native_handle() != nullptr);
  // Three comma-separated 127.0.0.1:port addresses.
  const auto& servers = cluster.bootstrap_servers();
  BOOST_TEST(std::count(servers.begin(), servers.end(), ',') == 2);
  BOOST_TEST(servers.rfind("127.0.0.1:", 0) == 0U);

  cluster.create_topic("orders", 3, 2);
  try {
    cluster.create_topic("orders", 3, 2);
    BOOST_FAIL("creating an existing topic succeeded");
  } catch (const std::runtime_error& error) {
    BOOST_TEST(std::string{error.what()}.find("TOPIC_ALREADY_EXISTS") != std::string::npos,
               error.what());
  }
  BOOST_CHECK_THROW(cluster.create_topic("", 1, 1), std::invalid_argument);
  BOOST_CHECK_THROW(cluster.create_topic("none", 0, 1), std::invalid_argument);
  BOOST_CHECK_THROW(cluster.create_topic("wide", 1, 4), std::invalid_argument);
  BOOST_CHECK_THROW(cluster.set_broker_down(0), std::out_of_range);
  BOOST_CHECK_THROW(cluster.set_broker_up(4), std::out_of_range);
  BOOST_CHECK_THROW(embedded_cluster{0}, std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(produced_message_is_consumed_back) {
  embedded_cluster cluster;
  cluster.create_topic("events", 1, 3);
  auto producer = make_producer(cluster, "30000");

  const auto delivered = produce(producer.get(), "events", "user-7", "signed-up");

  BOOST_TEST(delivered.error == RD_KAFKA_RESP_ERR_NO_ERROR, rd_kafka_err2str(delivered.error));
  BOOST_TEST(delivered.offset == 0);
  const auto messages = consume(cluster, "events", 1);
  BOOST_TEST_REQUIRE(messages.size() == 1U);
  BOOST_TEST(messages[0].key == "user-7");
  BOOST_TEST(messages[0].value == "signed-up");
  BOOST_TEST(messages[0].offset == 0);
}

BOOST_AUTO_TEST_CASE(brokers_set_down_refuse_delivery_until_set_up) {
  embedded_cluster cluster;
  cluster.create_topic("payments", 1, 1);
  {
    auto producer = make_producer(cluster, "30000");
    BOOST_TEST(produce(producer.get(), "payments", "k", "before").error ==
               RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  cluster.set_all_brokers_down();
  {
    auto producer = make_producer(cluster, "1500");
    const auto refused = produce(producer.get(), "payments", "k", "while-down");
    BOOST_TEST(refused.error == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, rd_kafka_err2name(refused.error));
  }

  cluster.set_all_brokers_up();
  {
    auto producer = make_producer(cluster, "30000");
    const auto delivered = produce(producer.get(), "payments", "k", "after");
    BOOST_TEST(delivered.error == RD_KAFKA_RESP_ERR_NO_ERROR, rd_kafka_err2str(delivered.error));
    BOOST_TEST(delivered.offset == 1);
  }

  // Only the two delivered messages are in the partition, in order.
  const auto messages = consume(cluster, "payments", 2);
  BOOST_TEST_REQUIRE(messages.size() == 2U);
  BOOST_TEST(messages[0].value == "before");
  BOOST_TEST(messages[1].value == "after");
}

BOOST_AUTO_TEST_CASE(leader_broker_down_refuses_delivery_until_set_up) {
  embedded_cluster cluster{3};
  cluster.create_topic("single", 1, 1);
  BOOST_TEST_REQUIRE(rd_kafka_mock_partition_set_leader(cluster.native_handle(), "single", 0, 2) ==
                     RD_KAFKA_RESP_ERR_NO_ERROR);

  cluster.set_broker_down(2);  // brokers 1 and 3 still answer metadata requests
  {
    auto producer = make_producer(cluster, "1500");
    BOOST_TEST(produce(producer.get(), "single", "k", "while-down").error ==
               RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
  }

  cluster.set_broker_up(2);
  auto producer = make_producer(cluster, "30000");
  const auto delivered = produce(producer.get(), "single", "k", "after");
  BOOST_TEST(delivered.error == RD_KAFKA_RESP_ERR_NO_ERROR, rd_kafka_err2str(delivered.error));
  BOOST_TEST(delivered.offset == 0);
}

BOOST_AUTO_TEST_SUITE_END()
