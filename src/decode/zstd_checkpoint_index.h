// ZstdCheckpointIndex: where a single-frame (or any) zstd blob can restart
// decoding, and the CRC-32 of each 64 KiB block of its output; the file
// format of docs/zstd-checkpoint-format.md (serialize, parse).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ocifs/byte_source.h"
#include "ocifs/status.h"

namespace ocifs {

// A place to restart: the block header at compressed offset `in` starts
// decoded offset `out`. Its segment runs to the next checkpoint's `out` (or
// the end of the output). Units: bytes.
struct ZstdCheckpoint {
  enum class Kind : uint8_t {
    kDictionary = 0,     // decode from here with the dictionary
    kFrameStart = 1,     // the first block of a frame: decode from here, no dictionary
    kFromFrameStart = 2  // no proven state here: the segment is decoded from the
                         // nearest kFrameStart before it, skipping its output
  };
  uint64_t in = 0;
  uint64_t out = 0;
  Kind kind = Kind::kFrameStart;
  uint32_t dict_size = 0;      // kDictionary: the dictionary's size
  std::vector<uint8_t> zdict;  // kDictionary: the dictionary, zstd-compressed (empty: in dict_blob)
  // kDictionary of a version 2 index opened lazily (ZstdCheckpointIndexV2):
  // where the compressed dictionary lies in the index's dict_blob, and its
  // CRC-32 (checked when a read first needs it). 0 otherwise.
  uint64_t zdict_offset = 0;
  uint32_t zdict_length = 0;
  uint32_t zdict_crc = 0;
};

// Value type.
struct ZstdCheckpointIndex {
  static constexpr uint32_t kMaxDictSize = 48u << 20;
  static constexpr uint64_t kMaxSegment = 1ull << 30;  // decoded bytes between two checkpoints
  uint64_t blob_size = 0;
  uint64_t decoded_size = 0;
  uint32_t window_log = 10;  // the synthesized frame header's window: 2^window_log bytes
  uint64_t spacing = 0;      // informational: the spacing it was built with
  std::vector<ZstdCheckpoint> checkpoints;
  uint32_t crc_block_size = 64 * 1024;
  std::vector<uint32_t> crcs;  // ceil(decoded_size / crc_block_size) of them
  // A version 2 index opened lazily: the index blob its dictionaries are read
  // from (each checkpoint's zdict_offset, zdict_length). Null: in `zdict`.
  ByteSourcePtr dict_blob;

  // The index's bytes (docs/zstd-checkpoint-format.md).
  std::string Serialize() const;
  // What Parse keeps of the dictionaries: kCopy, all of them; kSkip, none
  // (every `zdict` left empty: an index only checked, e.g. before it is
  // installed, without copying up to 64 MiB of dictionaries).
  enum class Dicts { kCopy, kSkip };
  // Parses and checks bytes from Serialize; kCorrupt names the field at fault
  // (any truncation, bit flip or bound out of range). The checks are the same
  // for both `dicts`.
  [[nodiscard]] static Result<ZstdCheckpointIndex> Parse(std::span<const uint8_t> bytes, Dicts dicts = Dicts::kCopy);
  // The checks both versions share (kCorrupt naming the field): the header's
  // window log and checksum block size; checkpoint i against the header and
  // the checkpoints before it (`zsize`: its compressed dictionary's size);
  // the last segment and the checksum count.
  [[nodiscard]] static Status CheckHeader(uint64_t window_log, uint64_t block_size);
  [[nodiscard]] Status CheckCheckpoint(size_t i, uint64_t zsize) const;
  [[nodiscard]] Status CheckEnd() const;
  // The checkpoint whose segment holds decoded offset `out` (< decoded_size).
  size_t SegmentAt(uint64_t out) const;
  // The segment's end (decoded), and the checkpoint a segment is decoded from.
  uint64_t SegmentEnd(size_t i) const;
  size_t RestartOf(size_t i) const;
  // The compressed bytes [first, second) a read of segment i decodes: from
  // its restart checkpoint's block to the next checkpoint's (or the blob's end).
  std::pair<uint64_t, uint64_t> SegmentInput(size_t i) const;
};

}  // namespace ocifs
