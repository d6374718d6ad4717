// GzipIndexV4: the table-first layout of a gzip checkpoint index (version 4,
// docs/gzip-index-format.md "Version 4: table first"), made for an index a
// mount reads lazily out of a registry blob (an acceleration artifact's
// `application/vnd.oci-fs.gzip-index.v4` piece): the header, the checkpoint
// records, the zero runs and the block checksums come first, under their own
// CRC-32; the compressed windows follow, each addressed by its record (offset,
// length, CRC-32) and independently decodable. A mount reads the header and
// the table (a few hundred KiB for ~4096 checkpoints) at open, and each window
// only when a read inflates from its checkpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "decode/gzip_index.h"
#include "ocifs/byte_source.h"
#include "ocifs/status.h"

namespace ocifs {

// Stateless; all functions are safe for concurrent use.
class GzipIndexV4 {
 public:
  static constexpr uint32_t kVersion = 4;
  // The same layout with checkpoints inside deflate blocks (kind 2): written
  // only when the index has one, so older readers keep reading the others.
  static constexpr uint32_t kVersionInsideBlocks = 5;
  static constexpr size_t kHeaderSize = 76;  // version 3's 68 bytes, then the table length
  static constexpr size_t kRecordSize = 40;  // a checkpoint record, without its window
  // The most a table may take (an artifact's piece is at most 64 MiB).
  static constexpr uint64_t kMaxTableBytes = uint64_t{64} << 20;

  // `index` (which must carry block checksums) in the version 4 layout, its
  // windows read from memory or their file. kInvalidArgument without checksums.
  [[nodiscard]] static Result<std::vector<uint8_t>> Serialize(const GzipIndex& index);

  // The table length a version 4 header gives (its first kHeaderSize bytes),
  // for a file of `file_size` bytes; kCorrupt if it is not a version 4 header,
  // or the length is out of bounds. `what` names the file in errors.
  [[nodiscard]] static Result<uint64_t> TableLength(std::span<const uint8_t> header, uint64_t file_size,
                                                    const std::string& what);

  // Parses and validates the table (the file's first TableLength bytes) of a
  // file of `file_size` bytes: every check of version 3 (docs/gzip-index-format.md
  // "Validation on load") except the windows', which are not read: each must
  // lie after the table and within the file, and is left in `windows` with its
  // CRC-32 (checked, and inflated, when a read needs it: a wrong one is
  // kCorrupt then). kCorrupt on any inconsistency.
  [[nodiscard]] static Result<GzipIndex> ParseTable(std::span<const uint8_t> table, uint64_t file_size,
                                                    std::shared_ptr<const GzipWindowFile> windows,
                                                    const std::string& what);

  // The whole file in memory: the table, and every window checked against its
  // CRC-32 and inflated (held in GzipCheckpoint::zwindow), as Parse does for
  // version 3.
  [[nodiscard]] static Result<GzipIndex> Parse(std::span<const uint8_t> bytes, const std::string& what);

  // Reads the header, then the table, from `blob` (two reads, through the
  // chunk cache when `blob` is a CachedSource) and parses it; the windows stay
  // in `blob`. Errors: the read's, or kCorrupt.
  [[nodiscard]] static Result<GzipIndex> Open(const ByteSourcePtr& blob, const std::string& what);
};

}  // namespace ocifs
