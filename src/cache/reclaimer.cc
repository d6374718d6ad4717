#include "cache/reclaimer.h"

#include <algorithm>
#include <spdlog/spdlog.h>

namespace ocifs {

Result<uint64_t> Reclaimer::MaybeReclaim() {
  if (usage_.Get() <= max_bytes_) return uint64_t{0};
  OCIFS_ASSIGN_OR_RETURN(SharedUsage::Lock lock, usage_.LockExclusive(/*wait_for_threads=*/false));
  // Another process may have evicted while we waited for the flock.
  if (!lock.held() || usage_.Get() <= max_bytes_) return uint64_t{0};
  return ScanAndEvict();
}

Result<uint64_t> Reclaimer::Rescan() {
  OCIFS_ASSIGN_OR_RETURN(SharedUsage::Lock lock, usage_.LockExclusive(/*wait_for_threads=*/true));
  return ScanAndEvict();
}

Result<uint64_t> Reclaimer::ScanAndEvict() {
  OCIFS_ASSIGN_OR_RETURN(std::vector<ChunkStore::FileInfo> files,
                         store_.Scan(WallClockNs() - kTempFileMaxAgeNs));
  uint64_t total = 0;
  for (const auto& f : files) total += f.bytes;
  if (total <= max_bytes_) {
    usage_.Set(total);
    return uint64_t{0};
  }
  std::vector<LruPolicy::Candidate> candidates;
  candidates.reserve(files.size());
  for (const auto& f : files) {
    int64_t recency = f.mtime_ns;
    // Our own finer-grained order only applies to chunks of our chunk size.
    if (f.chunk_size == store_.chunk_size()) recency = std::max(recency, lru_.LastUse(f.key, f.index));
    candidates.push_back({recency, f.bytes});
  }
  uint64_t evicted = 0;
  uint64_t freed = 0;
  for (size_t i : LruPolicy::ChooseVictims(candidates, total - low_water_)) {
    const auto& f = files[i];
    if (!store_.Remove(f)) continue;  // gone already, or not ours to remove: the next scan sees
    if (f.chunk_size == store_.chunk_size()) lru_.Forget(f.key, f.index);
    freed += f.bytes;
    ++evicted;
  }
  usage_.Set(total - freed);
  spdlog::debug("chunk cache {}: evicted {} chunk files ({} bytes), {} bytes remain", store_.dir(),
               evicted, freed, total - freed);
  return evicted;
}

}  // namespace ocifs
