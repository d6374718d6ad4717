// Checkpoints inside deflate blocks, for the gzip index an artifact ships
// with a profile (docs/gzip-index-format.md, "Checkpoints inside blocks").
//
// A mount verifies whole checksum blocks (index.block_size of output), so a
// read inflates, and fetches, from a checkpoint at or before its first
// checksum block's start to one at or after its last one's end. Restart
// points between deflate blocks (GzipTargetPlacer) leave up to a deflate
// block (~33 KB of a `gzip -6` layer of incompressible data) beyond that on
// each side of every region a workload reads. A decoder can restart at any
// literal/length code inside a dynamic or fixed block too, given the block's
// header (its code tables: a few hundred bits) and the 32 KiB window: this
// adds such checkpoints exactly at the checksum-block boundaries around each
// target, so a profiled read fetches its checksum blocks and nothing more.
//
// The positions come from zlib itself: inflate(Z_TREES) stops at each block's
// start and at its header's end (strm.data_type), and inflateMark() after an
// output-limited inflate gives the current code's start (bits back from the
// input position) and the bytes it already emitted.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "decode/gzip_index.h"
#include "decode/gzip_target_placer.h"
#include "ocifs/byte_source.h"

namespace ocifs {

struct BlockCheckpointOptions {
  // A checkpoint is added only where the index's nearest one before it lies
  // more than this many compressed bytes before it.
  uint64_t min_gain = 2048;
  size_t max_added = 8192;
  uint64_t max_zwindow_bytes = 16ull << 20;  // their windows and headers, compressed, in all
};

struct BlockCheckpointStats {
  uint64_t wanted = 0;           // checksum-block boundaries around the targets
  uint64_t added = 0;            // checkpoints added (inside blocks, or at a block's start)
  uint64_t near_existing = 0;    // wanted, but a checkpoint of the index was close enough
  uint64_t in_stored = 0;        // inside a stored block: left to the raw span table
  uint64_t dropped_verify = 0;   // did not inflate to the checksum block after it: dropped
  uint64_t zwindow_bytes = 0;    // the added windows and headers, compressed
};

// Adds to `index` (which must carry block checksums; the blob `compressed`
// was indexed: same sizes, else kCorrupt) a checkpoint at the start of the
// checksum block holding the output at each of `points` placed before a
// target (GzipTargetPlacer::Plan), and at the end of the one holding it for
// each placed after one. Each is verified: inflated from, it must make the
// checksum block after it (else it is dropped). Their windows are made sparse
// (SparsifyGzipWindow). Errors: reading `compressed`, or its data does not
// inflate (kCorrupt naming `layer`); the index is then unchanged.
// Thread safety: none on `index`; `compressed` must be safe for concurrent use.
[[nodiscard]] Status AddBlockCheckpoints(const ByteSource& compressed, GzipIndex& index,
                                         const std::vector<GzipTargetPlacer::Point>& points, const std::string& layer,
                                         const BlockCheckpointOptions& options = {},
                                         BlockCheckpointStats* stats = nullptr);

// Bits [first_bit, end_bit) of `bytes` (deflate's order: bit 0 is the low bit
// of bytes[0]), packed from bit 0 of the result; the last byte's unused high
// bits are zero. Requires end_bit <= 8 * bytes.size().
std::vector<uint8_t> CopyBits(std::span<const uint8_t> bytes, uint64_t first_bit, uint64_t end_bit);

}  // namespace ocifs
