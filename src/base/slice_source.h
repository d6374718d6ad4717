// SliceSource: the window [offset, offset + length) of another source, e.g. a
// file inside a tar (nbdkit's tar filter: add the entry's offset and forward).
#pragma once

#include <string>

#include "ocifs/byte_source.h"

namespace ocifs {

// Thread safety: as safe as the inner source (stateless itself).
// Holes of the inner source are reported clipped to the window.
class SliceSource final : public ByteSource {
 public:
  // Fails with kCorrupt if the window does not fit inside `inner`.
  [[nodiscard]] static Result<std::shared_ptr<SliceSource>> Make(ByteSourcePtr inner, uint64_t offset,
                                                                 uint64_t length, std::string name);

  uint64_t size() const override { return length_; }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  Result<Extent> ExtentAt(uint64_t offset) const override;
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override { return name_; }

  SliceSource(ByteSourcePtr inner, uint64_t offset, uint64_t length, std::string name)
      : inner_(std::move(inner)), offset_(offset), length_(length), name_(std::move(name)) {}

 private:
  ByteSourcePtr inner_;
  uint64_t offset_;
  uint64_t length_;
  std::string name_;
};

}  // namespace ocifs
