// SparseFileSource: a sparse tar entry (GNU or PAX sparse) as its expanded
// file. The data runs are stored back to back in the layer; the gaps between
// them are holes that read as zeros and are reported by ExtentAt, so
// SEEK_DATA/SEEK_HOLE on a raw disk packed with `tar --sparse` skip them.
#pragma once

#include <string>
#include <vector>

#include "image/tar_entry.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// Thread safety: immutable after Make; as safe as the layer source.
class SparseFileSource final : public ByteSource {
 public:
  // `layer` is the decompressed layer; `entry` a sparse file of it. Fails with
  // kCorrupt if the map is unsorted, overlapping or outside the file.
  [[nodiscard]] static Result<std::shared_ptr<SparseFileSource>> Make(ByteSourcePtr layer, const TarEntry& entry,
                                                                      std::string name);

  uint64_t size() const override { return size_; }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  Result<Extent> ExtentAt(uint64_t offset) const override;
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override { return name_; }

 private:
  struct Run {
    uint64_t logical;  // offset in the expanded file
    uint64_t length;
    uint64_t stored;   // offset in the layer
  };
  SparseFileSource(ByteSourcePtr layer, std::vector<Run> runs, uint64_t size, std::string name)
      : layer_(std::move(layer)), runs_(std::move(runs)), size_(size), name_(std::move(name)) {}
  // Index of the first run that ends after `offset` (runs_.size() if none).
  size_t RunAfter(uint64_t offset) const;

  ByteSourcePtr layer_;
  std::vector<Run> runs_;  // sorted, disjoint, non-empty
  uint64_t size_;
  std::string name_;
};

}  // namespace ocifs
