#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <corvo/core/log.hpp>
#include <corvo/kafka/detail/native.hpp>
#include <corvo/kafka/embedded_cluster.hpp>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace corvo::kafka::detail {
namespace {

// librdkafka's syslog levels mapped onto corvo's severities. Called on librdkafka's own
// threads: corvo::log::write is thread-safe and touches no user code.
void log_trampoline(const rd_kafka_t* rk, int level, const char* facility,
                    const char* text) noexcept {
  try {
    log::severity severity = log::severity::debug;
    if (level <= 3) {
      severity = log::severity::error;
    } else if (level == 4) {
      severity = log::severity::warning;
    } else if (level <= 6) {
      severity = log::severity::info;
    }
    if (!log::enabled(severity)) {
      return;
    }
    std::string line = rd_kafka_name(rk);
    line += " ";
    line += facility;
    line += ": ";
    line += text;
    log::write(severity, "kafka", line);
  } catch (...) {
    // Nothing may escape into librdkafka; a lost log line is the lesser harm.
  }
}

}  // namespace

native_config make_native_config(const client_config& config, client_role role,
                                 const std::map<std::string, std::string>& defaults,
                                 const std::map<std::string, std::string>& forced) {
  native_config result;
  result.conf.reset(rd_kafka_conf_new());
  std::array<char, 512> reason{};

  auto apply = [&](const std::string& name, const std::string& value, const std::string& key) {
    if (rd_kafka_conf_set(result.conf.get(), name.c_str(), value.c_str(), reason.data(),
                          reason.size()) != RD_KAFKA_CONF_OK) {
      throw config_error(key, "kafka: key '" + key + "' = \"" + value +
                                  "\" rejected by librdkafka: " + reason.data());
    }
  };

  auto properties = defaults;
  for (auto& [name, value] : config.properties(role)) {
    properties[name] = value;
  }
  for (const auto& [name, value] : forced) {
    properties[name] = value;
  }
  if (auto brokers = config.embedded_brokers()) {
    result.embedded = config.embedded();
    properties["bootstrap.servers"] = result.embedded->bootstrap_servers();
  }
  for (const auto& [name, value] : properties) {
    const bool from_user = config.get(role, name).has_value() && !forced.contains(name);
    apply(name, value, from_user ? config.key_of(role, name) : "kafka(corvo default)." + name);
  }
  rd_kafka_conf_set_log_cb(result.conf.get(), log_trampoline);
  return result;
}

rd_kafka_t* make_handle(rd_kafka_type_t type, conf_ptr& conf) {
  std::array<char, 512> reason{};
  rd_kafka_t* handle = rd_kafka_new(type, conf.get(), reason.data(), reason.size());
  if (handle == nullptr) {
    throw std::runtime_error(std::string("kafka: cannot create the ") +
                             (type == RD_KAFKA_PRODUCER ? "producer" : "consumer") + ": " +
                             reason.data());
  }
  (void)conf.release();  // owned by the handle now
  return handle;
}

namespace {

// Threads destroying handles off the loop; finished ones are joined at the next burial,
// the rest when the process exits.
class handle_graveyard {
 public:
  ~handle_graveyard() {
    std::lock_guard lock(mutex_);
    for (auto& g : graves_) {
      g.thread.join();
    }
  }

  void bury(rd_kafka_t* handle, int flags, std::shared_ptr<void> keep) {
    std::lock_guard lock(mutex_);
    std::erase_if(graves_, [](grave& g) {
      if (!g.done->load()) {
        return false;
      }
      g.thread.join();
      return true;
    });
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread thread([handle, flags, keep = std::move(keep), done] {
      rd_kafka_destroy_flags(handle, flags);
      done->store(true);
    });
    graves_.push_back({std::move(thread), std::move(done)});
  }

 private:
  struct grave {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex mutex_;
  std::vector<grave> graves_;
};

}  // namespace

void destroy_in_background(rd_kafka_t* handle, int flags, std::shared_ptr<void> keep) {
  static handle_graveyard graveyard;
  graveyard.bury(handle, flags, std::move(keep));
}

queue_wakeup::queue_wakeup(const asio::any_io_executor& executor) : descriptor_(executor) {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(), "kafka: eventfd");
  }
  descriptor_.assign(fd);
}

queue_wakeup::~queue_wakeup() {
  close();
}

void queue_wakeup::attach(rd_kafka_queue_t* queue) {
  // An eventfd write must be 8 bytes; librdkafka keeps its own copy of the payload.
  const std::uint64_t one = 1;
  attached_.push_back(queue);
  rd_kafka_queue_io_event_enable(queue, descriptor_.native_handle(), &one, sizeof one);
}

void queue_wakeup::detach(rd_kafka_queue_t* queue) noexcept {
  const auto it = std::find(attached_.begin(), attached_.end(), queue);
  if (it != attached_.end()) {
    rd_kafka_queue_io_event_enable(queue, -1, nullptr, 0);
    attached_.erase(it);
  }
}

void queue_wakeup::close() noexcept {
  // Detach first: afterwards librdkafka no longer writes to the descriptor, so closing it
  // cannot make a librdkafka thread write into a reused file descriptor number.
  for (auto* queue : attached_) {
    rd_kafka_queue_io_event_enable(queue, -1, nullptr, 0);
  }
  attached_.clear();
  boost::system::error_code ignored;
  descriptor_.cancel(ignored);
}

void queue_wakeup::consume() noexcept {
  std::uint64_t counter = 0;
  if (descriptor_.is_open()) {
    // EAGAIN (nothing written since the last read) is fine.
    [[maybe_unused]] const auto n = ::read(descriptor_.native_handle(), &counter, sizeof counter);
  }
}

}  // namespace corvo::kafka::detail
