#include "base/memory_source.h"

#include <algorithm>
#include <cstring>

namespace ocifs {

Result<size_t> MemorySource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (offset >= bytes_.size()) return size_t{0};
  size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes_.size() - offset));
  std::memcpy(buf.data(), bytes_.data() + offset, n);
  return n;
}

Status ReadExactly(const ByteSource& source, uint64_t offset, std::span<uint8_t> buf) {
  OCIFS_ASSIGN_OR_RETURN(size_t n, source.ReadAt(offset, buf));
  if (n != buf.size()) {
    return Corrupt("unexpected end of " + source.Describe() + " at offset " +
                   std::to_string(offset + n) + " (wanted " + std::to_string(buf.size()) +
                   " bytes at " + std::to_string(offset) + ")");
  }
  return Status::Ok();
}

}  // namespace ocifs
