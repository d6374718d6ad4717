#include "image/bare_disk_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

namespace ocifs {

Result<ByteSourcePtr> BareDiskSource::Open(ByteSourcePtr decoded, std::optional<uint64_t> declared, bool need_size,
                                           std::string what) {
  if (!decoded) return InvalidArgument("BareDiskSource: no stream");
  const uint64_t known = decoded->size();
  if (declared) {
    if (known != kUnknownSize && known != *declared) {
      return Corrupt(what + ": its size annotation says " + std::to_string(*declared) + " bytes, the stream is " +
                     std::to_string(known));
    }
    return ByteSourcePtr(std::make_shared<BareDiskSource>(std::move(decoded), *declared, std::move(what),
                                                          "its size annotation"));
  }
  if (known == kUnknownSize && need_size) {
    // Reads past the end of a stream wait for its pass, and return 0 once it is over (ByteSource::size).
    spdlog::info("{}: a raw disk whose size is known only at the end of its stream (no size annotation): "
                 "reading the stream to its end before the mount is ready",
                 what);
    std::array<uint8_t, 1> probe{};
    auto read = decoded->ReadAt(kUnknownSize - 2, probe);
    if (!read.ok()) return read.status().WithContext(what);
    if (decoded->size() == kUnknownSize) return Internal(what + ": the stream's size is still unknown at its end");
  }
  const uint64_t size = decoded->size();
  return ByteSourcePtr(std::make_shared<BareDiskSource>(std::move(decoded), size, std::move(what), "the stream's size"));
}

BareDiskSource::BareDiskSource(ByteSourcePtr decoded, uint64_t size, std::string what, std::string origin)
    : decoded_(std::move(decoded)), size_(size), what_(std::move(what)), origin_(std::move(origin)) {}

Status BareDiskSource::CheckSize() const {
  const uint64_t known = decoded_->size();
  if (known == kUnknownSize || known == size_ || size_ == kUnknownSize) return Status::Ok();
  return Corrupt(what_ + ": the stream is " + std::to_string(known) + " bytes, " + origin_ + " says " +
                 std::to_string(size_));
}

Result<size_t> BareDiskSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (buf.empty() || offset >= size_) return size_t{0};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size_ - offset));
  OCIFS_RETURN_IF_ERROR(CheckSize());
  auto got = decoded_->ReadAt(offset, buf.first(n));
  if (!got.ok()) return got.status().WithContext(what_);
  if (*got < n && size_ != kUnknownSize) {
    return Corrupt(what_ + ": the stream ends at byte " + std::to_string(offset + *got) + ", before " + origin_ +
                   " (" + std::to_string(size_) + ")");
  }
  OCIFS_RETURN_IF_ERROR(CheckSize());
  return *got;
}

Result<Extent> BareDiskSource::ExtentAt(uint64_t offset) const {
  if (offset >= size_) return Extent{offset, 0, false};
  OCIFS_RETURN_IF_ERROR(CheckSize());
  OCIFS_ASSIGN_OR_RETURN(Extent e, decoded_->ExtentAt(offset));
  if (e.length == 0) return Extent{offset, size_ == kUnknownSize ? 0 : size_ - offset, false};
  e.length = std::min(e.length, size_ - e.offset);
  return e;
}

void BareDiskSource::Prefetch(uint64_t offset, uint64_t length) const {
  if (offset >= size_) return;
  decoded_->Prefetch(offset, std::min(length, size_ - offset));
}

}  // namespace ocifs
