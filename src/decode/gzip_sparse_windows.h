// Sparse checkpoint windows: a gzip checkpoint's window (the 32 KiB of output
// before it) is needed only where the deflate data after the checkpoint
// copies from it. Bytes no back-reference reaches can be zero, so the window
// compresses to almost nothing: for a layer of incompressible data (a qcow2
// of compressed clusters, packages) gzip emits few matches, and a window of
// 32 KiB holds a few hundred bytes that matter (rapidgzip's sparse windows).
//
// Which bytes are referenced is found without a deflate parser of our own:
// only the first 32 KiB of output after a checkpoint can reach into its
// window, and every output byte is either a literal or a copy of exactly one
// window byte. Inflating that output with three made-up windows tells which:
// A[j] = j mod 256, C[j] = 255 - A[j] (an output byte that differs between
// the two was copied from the window, at position A-output + 256 * B-output
// with B[j] = j / 256). The kept window is then checked: inflated with it,
// the first 32 KiB of output must equal the real window's, else the window
// is left as it was.
#pragma once

#include <cstdint>
#include <string>

#include "decode/gzip_index.h"
#include "ocifs/byte_source.h"

namespace ocifs {

struct SparseWindowStats {
  uint64_t checkpoints = 0;       // checkpoints with a window
  uint64_t sparse = 0;            // of them, made sparse
  uint64_t bytes_kept = 0;        // window bytes referenced (kept), over all
  uint64_t window_bytes = 0;      // window bytes, over all
  uint64_t zwindow_before = 0;    // compressed window bytes before
  uint64_t zwindow_after = 0;     // ... and after
};

// Makes cp's window sparse (as below), if that makes it smaller: true if it
// did (cp's window is then in memory, GzipCheckpoint::zwindow). A member
// start or a checkpoint without a window: false.
[[nodiscard]] Result<bool> SparsifyGzipWindow(const ByteSource& compressed, GzipCheckpoint& cp,
                                              uint64_t decompressed_size, const std::string& layer,
                                              SparseWindowStats* stats = nullptr);

// Makes every window of `index` (a complete index of `compressed`, windows in
// memory or in their file) sparse: bytes no back-reference of the deflate data
// after its checkpoint reaches are zeroed, and the window is compressed again
// (held in memory: GzipCheckpoint::zwindow). Reads compressed from each
// checkpoint (up to the bytes that make 32 KiB of output). `layer` names the
// blob in errors. Errors: reading `compressed`, or its data does not inflate
// from a checkpoint (kCorrupt); the index is then partly sparse, still right.
// Thread safety: none on `index`; `compressed` must be safe for concurrent use.
[[nodiscard]] Status SparsifyGzipWindows(const ByteSource& compressed, GzipIndex& index, const std::string& layer,
                                         SparseWindowStats* stats = nullptr);

}  // namespace ocifs
