#include <corvo/kafka/detail/handler_memory.hpp>

#include <array>
#include <cstdint>

namespace corvo::kafka::detail {
namespace {

constexpr std::size_t class_count = 4;  // 64, 128, 256, 512 bytes
constexpr std::size_t max_cached_per_class = 1 << 17;

std::size_t size_class(std::size_t size) noexcept {
  if (size <= 64)
    return 0;
  if (size <= 128)
    return 1;
  if (size <= 256)
    return 2;
  if (size <= 512)
    return 3;
  return class_count;
}

constexpr std::size_t class_size(std::size_t index) noexcept {
  return std::size_t{64} << index;
}

struct free_block {
  free_block* next;
};

struct free_lists {
  std::array<free_block*, class_count> heads{};
  std::array<std::size_t, class_count> counts{};

  free_lists() = default;
  free_lists(const free_lists&) = delete;
  free_lists& operator=(const free_lists&) = delete;
  ~free_lists() {
    for (auto* head : heads) {
      while (head != nullptr) {
        free_block* next = head->next;
        ::operator delete(head);
        head = next;
      }
    }
  }
};

thread_local free_lists lists;

}  // namespace

void* handler_memory::allocate(std::size_t size) {
  const std::size_t index = size_class(size);
  if (index == class_count) {
    return ::operator new(size);
  }
  if (free_block* block = lists.heads[index]) {
    lists.heads[index] = block->next;
    --lists.counts[index];
    return block;
  }
  return ::operator new(class_size(index));
}

void handler_memory::deallocate(void* pointer, std::size_t size) noexcept {
  if (pointer == nullptr) {
    return;
  }
  const std::size_t index = size_class(size);
  if (index == class_count || lists.counts[index] >= max_cached_per_class) {
    ::operator delete(pointer);
    return;
  }
  auto* block = static_cast<free_block*>(pointer);
  block->next = lists.heads[index];
  lists.heads[index] = block;
  ++lists.counts[index];
}

}  // namespace corvo::kafka::detail
