// The disk view: what the guest sees of a disk file, raw or qcow2.
#pragma once

#include <cstdint>

#include "ocifs/byte_source.h"

namespace ocifs {

struct DiskViewOptions {
  // Decompressed qcow2 clusters kept in memory (bytes, LRU), so a guest reading
  // a compressed cluster in small pieces decompresses it once.
  uint64_t memory_cache_bytes = 8ull << 20;
  // qcow2 L2 tables kept in memory (bytes, LRU); one table is one cluster.
  uint64_t l2_cache_bytes = 32ull << 20;
  // Look for a fixed VHD's footer at the end of the file (see DetectDiskFormat).
  bool check_trailer = true;
};

// Detects the format from the bytes (DetectDiskFormat) and returns the view:
// raw: `file` itself; qcow2: a Qcow2Source over `file`.
// Errors name the feature refused (kUnsupported) or the field that is wrong (kCorrupt).
[[nodiscard]] Result<ByteSourcePtr> OpenDiskView(ByteSourcePtr file, const DiskViewOptions& options);

}  // namespace ocifs
