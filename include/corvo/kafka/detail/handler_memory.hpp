#pragma once
// Internal: memory for type-erased completion handlers of sends.
//
// A producer keeps up to queue.buffering.max.messages sends open, each with a type-erased
// completion handler. Asio's recycling allocator caches only a couple of blocks per thread,
// so at that scale every handler would go to malloc and back. This allocator keeps freed
// blocks in per-thread free lists by size class (64 to 512 bytes, larger sizes go to
// operator new), bounded so a burst does not pin memory forever. Blocks may be freed on
// another thread than the one that allocated them; they simply join that thread's list.

#include <cstddef>
#include <new>

namespace corvo::kafka::detail {

class handler_memory {
 public:
  static void* allocate(std::size_t size);
  static void deallocate(void* pointer, std::size_t size) noexcept;
};

template <class T>
struct handler_allocator {
  using value_type = T;

  handler_allocator() noexcept = default;
  template <class U>
  handler_allocator(const handler_allocator<U>&) noexcept {}

  T* allocate(std::size_t n) { return static_cast<T*>(handler_memory::allocate(n * sizeof(T))); }
  void deallocate(T* pointer, std::size_t n) noexcept {
    handler_memory::deallocate(pointer, n * sizeof(T));
  }

  template <class U>
  bool operator==(const handler_allocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace corvo::kafka::detail
