#include "registry/blob_source.h"

#include <algorithm>

namespace ocifs {

Result<size_t> BlobSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (offset >= blob_.size || buf.empty()) return size_t{0};
  size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), blob_.size - offset));
  OCIFS_RETURN_IF_ERROR(session_->ReadBlobRange(blob_, offset, buf.first(n)));
  return n;
}

Status BlobSource::ReadStream(uint64_t offset, uint64_t length, const StreamConsumer& consume) const {
  if (offset > blob_.size || length > blob_.size - offset) {
    return Corrupt("a stream of " + std::to_string(length) + " bytes at " + std::to_string(offset) + " passes the end of " +
                   Describe());
  }
  if (length == 0) return Status::Ok();
  return session_->StreamBlobRange(blob_, offset, length, consume);
}

Status BlobSource::ReadRanges(std::span<const ByteRange> ranges, const RangesConsumer& consume) const {
  uint64_t end = 0;
  for (const ByteRange& r : ranges) {
    if (r.length == 0 || r.offset < end || r.offset > blob_.size || r.length > blob_.size - r.offset) {
      return Corrupt("ranges asked of " + Describe() + " are unsorted, empty, overlapping or past its end");
    }
    end = r.offset + r.length;
  }
  if (ranges.empty()) return Status::Ok();
  if (ranges.size() == 1) {
    const uint64_t offset = ranges[0].offset;
    return ReadStream(offset, ranges[0].length,
                      [&](uint64_t at, std::span<const uint8_t> bytes) { return consume(offset + at, bytes); });
  }
  return session_->StreamBlobRanges(blob_, ranges, consume);
}

std::string BlobSource::Describe() const { return "blob " + blob_.digest.substr(0, 19) + ".. of " + session_->Name(); }

}  // namespace ocifs
