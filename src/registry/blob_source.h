// BlobSource: one registry blob as a ByteSource, read with HTTP range requests.
#pragma once

#include <memory>
#include <string>

#include "ocifs/byte_source.h"
#include "registry/descriptor.h"
#include "registry/pull_endpoints.h"

namespace ocifs {

// Thread safety: safe for concurrent ReadAt from many threads (each read is
// its own request on its own pooled connection). Shares the endpoints
// (mirrors, then the registry).
// Units: bytes; size() is the descriptor's size. No caching here (src/cache).
class BlobSource final : public ByteSource {
 public:
  BlobSource(std::shared_ptr<PullEndpoints> session, Descriptor blob)
      : session_(std::move(session)), blob_(std::move(blob)) {}

  uint64_t size() const override { return blob_.size; }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  // One range request for all of it (PullEndpoints::StreamBlobRange).
  Status ReadStream(uint64_t offset, uint64_t length, const StreamConsumer& consume) const override;
  // One multi-range request (PullEndpoints::StreamBlobRanges); one range is a ReadStream.
  Status ReadRanges(std::span<const ByteRange> ranges, const RangesConsumer& consume) const override;
  std::string Describe() const override;

 private:
  std::shared_ptr<PullEndpoints> session_;
  Descriptor blob_;
};

}  // namespace ocifs
