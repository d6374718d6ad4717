// Building a zstd checkpoint index (docs/zstd-checkpoint-format.md) in one
// sequential pass over a zstd blob: `oci-fs accelerate` does it once, and
// mounts elsewhere read any range from the nearest checkpoint before it
// (ZstdCheckpointSource). Every checkpoint is proven before it is kept: its
// segment is decoded from its dictionary and compared with the real output.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "decode/raw_span_table.h"
#include "decode/zstd_checkpoint_index.h"
#include "ocifs/byte_source.h"

namespace ocifs {

struct ZstdCheckpointOptions {
  // A checkpoint at the first block boundary after this many decoded bytes
  // since the previous one.
  uint64_t spacing = 1ull << 20;
  // Ranges [first, second) of the compressed blob a workload reads (as
  // DecoderOptions::checkpoint_targets): a checkpoint at the block holding
  // each range's start and at the first block at or after its end.
  std::vector<std::pair<uint64_t, uint64_t>> targets;
  // A checkpoint whose segment refers further back than this (or needs a
  // repeat offset larger) is not kept: its dictionary would be that large.
  uint64_t max_reach = 32ull << 20;
  // The compressed dictionaries take about this much at most (an index in an
  // acceleration artifact must stay under 64 MiB): a checkpoint is placed
  // only while those so far, and one more the size of the last, take less
  // than the budget's share of the blob read so far (budget * offset / blob
  // size); else the open segment goes on. The last segment's may go over.
  // A large window (level 19: 8 MiB) makes a checkpoint's dictionary large.
  uint64_t max_dict_bytes = 40ull << 20;
  // Level at which dictionaries are compressed into the index.
  int dict_level = 3;  // 1: ~2x faster builds at level 19, ~5% larger; 6: ~7% smaller, ~1.7x slower
};

// What a build found. Units: counts, bytes.
struct ZstdCheckpointStats {
  uint64_t frames = 0;
  uint64_t checkpoints = 0;      // kept, frame starts included
  uint64_t dropped_reach = 0;    // too far back (max_reach)
  uint64_t dropped_verify = 0;   // did not decode to the real output
  uint64_t dict_bytes = 0;       // uncompressed dictionaries kept
  uint64_t zdict_bytes = 0;      // the same, compressed (as in the index)
  uint64_t skipped_budget = 0;   // checkpoints not placed for max_dict_bytes
  // Kept checkpoints whose first block reuses the dictionary's Huffman table
  // (treeless literals) or a sequence table (repeat mode).
  uint64_t first_treeless = 0;
  uint64_t first_repeat = 0;
};

// Reads `blob` (known size) from start to end in 4 MiB pieces. Memory: about
// min(window, max_reach) + 2 segments of output, plus the compressed bytes
// of one segment. kCorrupt names the offset of data libzstd refuses;
// kUnsupported for frames that need an external dictionary, and for a block
// libzstd decodes but the pass cannot follow (a stream to read without index).
// With `raw_spans`, also the blob's raw blocks of 4 KiB or more
// (RawSpanTable, docs/raw-spans-format.md).
[[nodiscard]] Result<ZstdCheckpointIndex> BuildZstdCheckpoints(const ByteSource& blob,
                                                               const ZstdCheckpointOptions& options,
                                                               ZstdCheckpointStats* stats = nullptr,
                                                               RawSpanTable* raw_spans = nullptr);

// The same, as the index file's bytes (ZstdCheckpointIndex::Serialize).
[[nodiscard]] Result<std::string> BuildZstdCheckpointIndex(const ByteSource& blob,
                                                           const ZstdCheckpointOptions& options,
                                                           ZstdCheckpointStats* stats = nullptr);

}  // namespace ocifs
