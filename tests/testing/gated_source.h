// GatedSource: a ByteSource stage for unit tests that holds back every read
// reaching past `open_until`, or of at least `held_length` bytes, until Open()
// is called, so a test can keep a background pass (or whole-chunk fetches) at
// a known point while foreground reads go on.
//
// Thread safety: safe for concurrent use; a blocked ReadAt wakes on Open().
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <utility>

#include "ocifs/byte_source.h"

namespace ocifs::testing {

class GatedSource final : public ByteSource {
 public:
  GatedSource(ByteSourcePtr inner, uint64_t open_until, size_t held_length = SIZE_MAX)
      : inner_(std::move(inner)), open_until_(open_until), held_length_(held_length) {}
  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return open_ || (offset + buf.size() <= open_until_ && buf.size() < held_length_); });
    lock.unlock();
    return inner_->ReadAt(offset, buf);
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  ByteSourcePtr inner_;
  uint64_t open_until_;
  size_t held_length_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool open_ = false;
};

}  // namespace ocifs::testing
