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

std::string BlobSource::Describe() const { return "blob " + blob_.digest.substr(0, 19) + ".. of " + session_->Name(); }

}  // namespace ocifs
