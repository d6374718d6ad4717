// Decompression of one qcow2 compressed cluster, as qemu writes it: raw
// deflate (window bits -12, no zlib header) or a zstd stream.
#pragma once

#include <cstdint>
#include <span>

#include "disk/qcow2_header.h"

namespace ocifs {

// Fills `out` (exactly one cluster) from the compressed bytes `in`. `in` may
// run past the end of the compressed stream (qemu rounds its length up to a
// 512-byte sector); decompression stops once `out` is full.
// kCorrupt if the stream is malformed or yields fewer than out.size() bytes.
// Thread safety: safe for concurrent use (per-thread decompression contexts).
// Memory: bounded; a zstd frame may not ask for a window over 8 MiB.
[[nodiscard]] Status DecompressCluster(Qcow2Compression type, std::span<const uint8_t> in,
                                       std::span<uint8_t> out);

}  // namespace ocifs
