// MemorySource: bytes held in memory as a ByteSource (tests, small blobs).
#pragma once

#include <string>
#include <vector>

#include "ocifs/byte_source.h"

namespace ocifs {

// Thread safety: immutable after construction; safe for concurrent use.
class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::vector<uint8_t> bytes, std::string name = "memory")
      : bytes_(std::move(bytes)), name_(std::move(name)) {}
  static std::shared_ptr<MemorySource> FromString(std::string_view s) {
    return std::make_shared<MemorySource>(std::vector<uint8_t>(s.begin(), s.end()));
  }

  uint64_t size() const override { return bytes_.size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  std::string Describe() const override { return name_; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
  std::string name_;
};

}  // namespace ocifs
