#include "base/memory_source.h"

#include <algorithm>
#include <cstring>
#include <vector>

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

Status ByteSource::ReadStream(uint64_t offset, uint64_t length, const StreamConsumer& consume) const {
  const uint64_t total = size();
  if (total != kUnknownSize && (offset > total || length > total - offset)) {
    return Corrupt("unexpected end of " + Describe() + ": a stream of " + std::to_string(length) + " bytes at " +
                   std::to_string(offset) + " passes its end (" + std::to_string(total) + ")");
  }
  std::vector<uint8_t> piece(static_cast<size_t>(std::min<uint64_t>(length, kStreamPiece)));
  for (uint64_t at = 0; at < length;) {
    const auto n = static_cast<size_t>(std::min<uint64_t>(piece.size(), length - at));
    OCIFS_RETURN_IF_ERROR(ReadExactly(*this, offset + at, std::span(piece).first(n)));
    if (!consume(at, std::span<const uint8_t>(piece).first(n))) {
      return Cancelled("stream of " + Describe() + " stopped by its reader");
    }
    at += n;
  }
  return Status::Ok();
}

}  // namespace ocifs
