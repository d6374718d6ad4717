// BareDiskSource: a bare disk layer's decompressed stream as the disk file,
// in the place the tar entry takes for a containerDisk (docs/bare-disks.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ocifs/byte_source.h"

namespace ocifs {

// size() is fixed at open: the size annotation when there is one, else the
// stream's own size (for a stream whose size is only known at its end, a
// single zstd frame without a content size or a gzip stream before its
// index exists, Open waits for the decoder's pass to reach the end).
// Reads check the stream against that size: a stream that ends before it
// (truncated, or a size annotation too large) fails the reads past its end
// with kCorrupt naming the layer, and once the decoder knows the stream's
// size, a size that differs fails every read -- never zeros or wrong bytes.
// Thread safety: as safe as `decoded` (immutable members only).
// Ownership: shares `decoded`.
class BareDiskSource final : public ByteSource {
 public:
  // `what` names the layer in errors ("layer 0 (sha256:..)"). `declared`:
  // the size annotation, bytes. With `need_size` false (a qcow2 disk, which
  // knows its own virtual size) and no annotation, an unknown stream size
  // stays unknown instead of being waited for.
  // Errors: kCorrupt when the stream's size is known at open and is not the
  // declared one; the decoder's error if the stream fails before its end.
  [[nodiscard]] static Result<ByteSourcePtr> Open(ByteSourcePtr decoded, std::optional<uint64_t> declared,
                                                  bool need_size, std::string what);

  BareDiskSource(ByteSourcePtr decoded, uint64_t size, std::string what, std::string origin);

  uint64_t size() const override { return size_; }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  Result<Extent> ExtentAt(uint64_t offset) const override;
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override { return what_; }
  Access access() const override { return decoded_->access(); }
  bool KeepsDecoded() const override { return decoded_->KeepsDecoded(); }
  Status WaitUntilIndexed() const override { return decoded_->WaitUntilIndexed(); }

 private:
  // kCorrupt once the decoder knows a stream size other than size_.
  [[nodiscard]] Status CheckSize() const;

  const ByteSourcePtr decoded_;
  const uint64_t size_;       // bytes; kUnknownSize only for a qcow2 stream of unknown size
  const std::string what_;    // the layer
  const std::string origin_;  // where size_ comes from, for messages
};

}  // namespace ocifs
