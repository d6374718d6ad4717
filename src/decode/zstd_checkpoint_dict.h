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
// offsets (each in 1..content_size), ending in `content_size` zero bytes: the
// content, which stands for the output before the checkpoint (its last byte
// is the byte just before it), for the caller to fill where matches copy.
std::vector<uint8_t> MakeZstdCheckpointDict(const ZstdEntropyState& state, const std::array<uint32_t, 3>& reps,
                                            size_t content_size);

struct ZstdDDictDeleter {
  void operator()(ZSTD_DDict* d) const { ZSTD_freeDDict(d); }
};
// Owns a digested dictionary; thread safety: immutable, shareable by decoders.
using ZstdDDictPtr = std::unique_ptr<ZSTD_DDict, ZstdDDictDeleter>;
// Digests a checkpoint dictionary; kCorrupt if libzstd rejects it. by_ref:
// the result refers to `dict`'s content, which must outlive it (no copy).
[[nodiscard]] Result<ZstdDDictPtr> LoadZstdCheckpointDict(std::span<const uint8_t> dict, bool by_ref = false);

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
