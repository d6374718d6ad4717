// ZstdCheckpointIndexV2: the table-first layout of a zstd checkpoint index
// (version 2, docs/zstd-checkpoint-format.md "Version 2: table first"), made
// for an index a mount reads lazily out of a registry blob (an acceleration
// artifact's `application/vnd.oci-fs.zstd-checkpoints.v2` piece): the header,
// a fixed-size record per checkpoint and the block checksums come first,
// under their own CRC-32; the compressed dictionaries follow, each addressed
// by its record (offset, length, CRC-32). A mount reads the header and the
// table (about 100 KiB for a 1 GiB layer) at open, and a checkpoint's
// dictionary only when a read first decodes from it (ZstdCheckpointSource).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "decode/zstd_checkpoint_index.h"
#include "ocifs/byte_source.h"
#include "ocifs/status.h"

namespace ocifs {

// Stateless; all functions are safe for concurrent use.
class ZstdCheckpointIndexV2 {
 public:
  static constexpr uint32_t kVersion = 2;
  static constexpr size_t kHeaderSize = 64;  // version 1's 56 bytes, then the table length
  static constexpr size_t kRecordSize = 40;  // a checkpoint record, without its dictionary
  // The most a table or a file may take (an artifact's piece is at most 64 MiB).
  static constexpr uint64_t kMaxFileBytes = uint64_t{64} << 20;

  // `index` (its dictionaries in memory: `zdict`) in the version 2 layout.
  // kInvalidArgument if a dictionary checkpoint has none in memory.
  [[nodiscard]] static Result<std::string> Serialize(const ZstdCheckpointIndex& index);

  // The table length a version 2 header (its first kHeaderSize bytes) gives,
  // for a file of `file_size` bytes; kCorrupt if it is not a version 2
  // header, or the length is out of bounds.
  [[nodiscard]] static Result<uint64_t> TableLength(std::span<const uint8_t> header, uint64_t file_size);

  // Parses and checks the table (the file's first TableLength bytes) of a
  // file of `file_size` bytes: every check of version 1 except the
  // dictionaries', which are not read: each must lie after the table and
  // within the file; their offsets, lengths and CRC-32s are left in the
  // checkpoints, and `dicts` (may be null) becomes the index's dict_blob.
  // kCorrupt naming the field at fault.
  [[nodiscard]] static Result<ZstdCheckpointIndex> ParseTable(std::span<const uint8_t> table, uint64_t file_size,
                                                              ByteSourcePtr dicts);

  // The whole file in memory: the table, and every dictionary checked
  // against its CRC-32 and copied into its checkpoint's `zdict`.
  [[nodiscard]] static Result<ZstdCheckpointIndex> Parse(std::span<const uint8_t> bytes);

  // Reads the header, then the table, from `blob` (two reads, through the
  // chunk cache when `blob` is a CachedSource) and parses it; the
  // dictionaries stay in `blob` (the index's dict_blob). Errors: the read's
  // (with context), or kCorrupt.
  [[nodiscard]] static Result<ZstdCheckpointIndex> Open(const ByteSourcePtr& blob);
};

}  // namespace ocifs
