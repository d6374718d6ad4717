// Restarting a single zstd frame in the middle: a checkpoint's state as a
// zstd dictionary (RFC 8878 5, the formatted kind: Huffman and FSE tables,
// repeat offsets, content), and the decode of whole original blocks behind a
// synthesized frame header with libzstd. docs/zstd-checkpoint-format.md.
#pragma once

#include <zstd.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "decode/zstd_block_tracker.h"
#include "ocifs/byte_source.h"
#include "ocifs/status.h"

namespace ocifs {

// The dictionary that puts a decoder in `state` with `reps` as its repeat
// offsets (each in 1..content.size()) and `content` as the output before the
// checkpoint (its last byte is the byte just before it).
std::vector<uint8_t> MakeZstdCheckpointDict(const ZstdEntropyState& state, const std::array<uint32_t, 3>& reps,
                                            std::span<const uint8_t> content);

struct ZstdDDictDeleter {
  void operator()(ZSTD_DDict* d) const { ZSTD_freeDDict(d); }
};
// Owns a digested dictionary; thread safety: immutable, shareable by decoders.
using ZstdDDictPtr = std::unique_ptr<ZSTD_DDict, ZstdDDictDeleter>;
// Digests a checkpoint dictionary; kCorrupt if libzstd rejects it.
[[nodiscard]] Result<ZstdDDictPtr> LoadZstdCheckpointDict(std::span<const uint8_t> dict);

// Decodes the blocks of `blob` from `in` (a block header) on, as the
// continuation of a frame with window 2^window_log whose state `ddict`
// restores (null: a frame start), until skip + out.size() bytes are decoded:
// the first `skip` are dropped, the rest written to `out`. Reads [in, in_end)
// in order, 4 MiB at a time, and no further than it needs. kCorrupt (naming
// the cause) if the blocks do not decode to that many bytes; a read's error
// as it is. Thread safety: reentrant.
[[nodiscard]] Status DecodeZstdBlocks(const ZSTD_DDict* ddict, uint32_t window_log, const ByteSource& blob,
                                      uint64_t in, uint64_t in_end, uint64_t skip, std::span<uint8_t> out);

}  // namespace ocifs
