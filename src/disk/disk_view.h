// The disk view: what the guest sees of a disk file, raw or qcow2.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "base/decoded_store.h"
#include "ocifs/byte_source.h"
#include "sched/scheduler.h"

namespace ocifs {

struct DiskViewOptions {
  // Lends the decode pool (a read's compressed clusters inflate side by side); null: Scheduler::Shared().
  std::shared_ptr<Scheduler> scheduler;
  // Decompressed qcow2 clusters kept in memory (bytes, LRU), so a guest reading
  // a compressed cluster in small pieces decompresses it once.
  uint64_t memory_cache_bytes = 2ull << 20;
  // qcow2 L2 tables kept in memory (bytes, LRU); one table is one cluster.
  uint64_t l2_cache_bytes = 32ull << 20;
  // Where decompressed qcow2 clusters are kept beyond memory (the on-disk
  // chunk cache), so a page-cache refill or the next mount reads a compressed
  // cluster back instead of fetching and inflating it again. Called once at
  // open with the image's cluster size; chunk i of the store is guest cluster
  // i. Unset, or a null store or one of another chunk size: memory only.
  std::function<std::shared_ptr<DecodedChunkStore>(uint32_t cluster_size)> cluster_store;
  // Look for a fixed VHD's footer at the end of the file (see DetectDiskFormat).
  bool check_trailer = true;
};

// Detects the format from the bytes (DetectDiskFormat) and returns the view:
// raw: `file` itself; qcow2: a Qcow2Source over `file`.
// Errors name the feature refused (kUnsupported) or the field that is wrong (kCorrupt).
[[nodiscard]] Result<ByteSourcePtr> OpenDiskView(ByteSourcePtr file, const DiskViewOptions& options);

}  // namespace ocifs
