// Dense checkpoints for a gzip index an artifact ships. A regular index has
// about 512 checkpoints (a window of up to 32 KiB each), so a read of a 237 MB
// layer inflates, and fetches, a span of ~460 KiB. Where the data after a
// restart point copies little from its window (incompressible data: gzip
// emits few matches), its sparse window (gzip_sparse_windows.h) costs a few
// hundred bytes, so checkpoints can be placed far closer: a read then fetches
// about the spacing below, one short range request. Where the windows stay
// large (compressible data), none is added and the index is as it was.
#pragma once

#include <cstdint>
#include <string>

#include "decode/gzip_index.h"
#include "ocifs/byte_source.h"

namespace ocifs {

struct DenseCheckpointOptions {
  uint64_t spacing = 128 << 10;            // decompressed bytes: a candidate about every this many
  uint32_t max_zwindow = 2048;             // added only if its sparse window compresses to at most this
  size_t max_added = 16384;                // checkpoints added at most
  uint64_t max_zwindow_bytes = 8ull << 20;  // the added windows' compressed bytes, in all
};

struct DenseCheckpointStats {
  uint64_t candidates = 0;    // restart points about `spacing` apart, not near a checkpoint already there
  uint64_t added = 0;         // of them, added
  uint64_t zwindow_bytes = 0;  // their compressed windows, in all
};

// Inflates `compressed` (the blob `index` was built for: same decompressed
// size, else kCorrupt) once more and adds to `index` the restart points about
// options.spacing apart (and at least half of it from a checkpoint already
// there) whose sparse window is small, within the limits. The index's other
// checkpoints are left as they are (make them sparse with SparsifyGzipWindows).
// Errors: reading `compressed`, or its data does not inflate (kCorrupt, naming
// `layer`); the index is then unchanged.
// Thread safety: none on `index`; `compressed` must be safe for concurrent use.
[[nodiscard]] Status AddSparseCheckpoints(const ByteSource& compressed, GzipIndex& index, const std::string& layer,
                                          const DenseCheckpointOptions& options = {},
                                          DenseCheckpointStats* stats = nullptr);

}  // namespace ocifs
