// ByteBufferPool: recycles a decoder's large scratch and output buffers, so a
// decode writes into memory that is already mapped instead of a fresh,
// zero-filled allocation. A fresh multi-MiB vector is zeroed and then faulted
// in page by page, and each of those faults is costly under a hypervisor:
// on the bench host 60% of a seekable zstd mount's CPU went to zeroing and
// faulting fresh 4 MiB frames, and the decoding itself to a few percent.
//
// Take(size) hands out a vector of exactly `size` bytes whose contents are
// unspecified (the caller overwrites them all); when its last owner drops
// it, the vector goes back to the pool, which keeps at most `max_bytes` of
// capacity (a returned vector frees smaller idle ones to make room, or is
// freed itself). A pooled vector is reused for a size up to its capacity
// (the smallest that fits): shrinking costs nothing, growing within the
// capacity zeroes only the growth, with no page faults. A new vector of a MiB
// or more gets an eighth more capacity, rounded up to whole MiBs.
//
// Thread safety: safe for concurrent use. Buffers may outlive the pool (they
// are then freed when dropped). Memory: at most max_bytes idle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace ocifs {

class ByteBufferPool : public std::enable_shared_from_this<ByteBufferPool> {
 public:
  using Buffer = std::shared_ptr<std::vector<uint8_t>>;

  static std::shared_ptr<ByteBufferPool> Make(size_t max_bytes);
  ByteBufferPool(const ByteBufferPool&) = delete;
  ByteBufferPool& operator=(const ByteBufferPool&) = delete;

  // A vector of `size` bytes, contents unspecified; returned to the pool
  // when its last owner (of it or of a shared_ptr converted from it) drops it.
  Buffer Take(size_t size);

  // Capacity kept idle now (tests).
  size_t idle_bytes() const;

 private:
  static constexpr size_t kRoundUp = size_t{1} << 20;

  explicit ByteBufferPool(size_t max_bytes) : max_bytes_(max_bytes) {}
  void Return(std::vector<uint8_t>* v);

  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> idle_;  // guarded by mu_
  size_t idle_bytes_ = 0;                                    // guarded by mu_: their capacities
};

}  // namespace ocifs
