// GuardedSource: forwards to its inner source until Poison() is called, then
// fails every read with the poison's status. Used for a disk served before the
// image's index was complete: if completing it shows the image breaks the
// containerDisk contract, later reads fail (EIO) rather than serve bytes the
// image does not stand behind.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "ocifs/byte_source.h"

namespace ocifs {

// Thread safety: safe for concurrent use; Poison may race with reads (a read
// that started before it may still succeed).
class GuardedSource final : public ByteSource {
 public:
  explicit GuardedSource(ByteSourcePtr inner) : inner_(std::move(inner)) {}

  // Fails all later reads with `why` (the first poison wins).
  void Poison(const Status& why);
  bool poisoned() const { return poisoned_.load(std::memory_order_acquire); }

  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  Result<Extent> ExtentAt(uint64_t offset) const override;
  void Prefetch(uint64_t offset, uint64_t length) const override { inner_->Prefetch(offset, length); }
  std::string Describe() const override { return inner_->Describe(); }

 private:
  Status Why() const;

  ByteSourcePtr inner_;
  std::atomic<bool> poisoned_{false};
  mutable std::mutex mu_;
  Status why_;  // guarded by mu_
};

}  // namespace ocifs
