// TarReader: forward-only, block-granular reads of a tar stream for indexing.
//
// It reads headers and metadata (PAX records, long names, sparse maps), never
// file data: each read fetches the block asked for plus a small read-ahead
// window (kWindow), so a gzip layer decoded in the background is read in small
// sequential pieces, and a jump over a huge file costs nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image/tar_header.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// Thread safety: not safe for concurrent use (one per TarIndex::Build).
// Borrows `source`, which must outlive the reader.
class TarReader {
 public:
  static constexpr size_t kWindow = 8 * kTarBlockSize;

  explicit TarReader(const ByteSource& source);

  // Reads the block at `offset` (a multiple of 512). Returns false at a clean
  // end of the stream (no bytes at `offset`); kCorrupt "truncated tar header"
  // if only part of the block exists. On true, block() is valid until the next call.
  [[nodiscard]] Result<bool> ReadBlock(uint64_t offset);
  TarBlock block() const { return TarBlock(buf_.data() + (block_offset_ - buf_offset_), kTarBlockSize); }

  // Reads exactly `length` bytes at `offset` (metadata only: callers cap `length`).
  // kCorrupt naming `what`, the offset and the layer if the stream ends first.
  [[nodiscard]] Result<std::string> ReadBytes(uint64_t offset, uint64_t length, std::string_view what);

  // Checks that the stream holds at least `end` bytes, without reading the bytes
  // before it when the size is known (a file's data must exist before the
  // archive may end). kCorrupt naming `what` if it does not.
  [[nodiscard]] Status RequireEnd(uint64_t end, std::string_view what);

  // "layer X at offset N", for error messages.
  std::string Where(uint64_t offset) const;
  const ByteSource& source() const { return source_; }

 private:
  const ByteSource& source_;
  std::vector<uint8_t> buf_;  // bytes [buf_offset_, buf_offset_ + buf_.size()) of the source
  uint64_t buf_offset_ = 0;
  uint64_t block_offset_ = 0;
};

}  // namespace ocifs
