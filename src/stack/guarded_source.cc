#include "stack/guarded_source.h"

namespace ocifs {

void GuardedSource::Poison(const Status& why) {
  std::lock_guard lock(mu_);
  if (poisoned_.load()) return;
  why_ = why;
  poisoned_.store(true, std::memory_order_release);
}

Status GuardedSource::Why() const {
  std::lock_guard lock(mu_);
  return why_;
}

Result<size_t> GuardedSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (poisoned()) return Why();
  return inner_->ReadAt(offset, buf);
}

Result<Extent> GuardedSource::ExtentAt(uint64_t offset) const {
  if (poisoned()) return Why();
  return inner_->ExtentAt(offset);
}

}  // namespace ocifs
