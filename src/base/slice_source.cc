#include "base/slice_source.h"

#include <algorithm>

namespace ocifs {

Result<std::shared_ptr<SliceSource>> SliceSource::Make(ByteSourcePtr inner, uint64_t offset,
                                                       uint64_t length, std::string name) {
  if (offset > inner->size() || length > inner->size() - offset) {
    return Corrupt(name + " (" + std::to_string(length) + " bytes at " + std::to_string(offset) +
                   ") extends past the end of " + inner->Describe() + " (" +
                   std::to_string(inner->size()) + " bytes)");
  }
  return std::make_shared<SliceSource>(std::move(inner), offset, length, std::move(name));
}

Result<size_t> SliceSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (offset >= length_) return size_t{0};
  size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), length_ - offset));
  return inner_->ReadAt(offset_ + offset, buf.first(n));
}

Result<Extent> SliceSource::ExtentAt(uint64_t offset) const {
  if (offset >= length_) return Extent{offset, 0, false};
  OCIFS_ASSIGN_OR_RETURN(Extent e, inner_->ExtentAt(offset_ + offset));
  uint64_t end = std::min(e.offset + e.length, offset_ + length_);
  uint64_t start = std::max(e.offset, offset_);
  return Extent{start - offset_, end - start, e.hole};
}

void SliceSource::Prefetch(uint64_t offset, uint64_t length) const {
  if (offset >= length_) return;
  inner_->Prefetch(offset_ + offset, std::min(length, length_ - offset));
}

}  // namespace ocifs
