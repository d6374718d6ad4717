// Reclaimer: keeps a cache dir under its bound (nbdkit's reclaim.c: the loop
// that frees space, apart from the store and from the recency policy).
//
// When the shared usage exceeds max_bytes, takes the exclusive cross-process
// lock, rescans the directory (the only exact count, since other processes
// write too), and unlinks the least recently used chunk files, as ranked by
// LruPolicy, until at most low_water_bytes remain. Readers in other processes
// are not disturbed: a file they opened stays readable after the unlink, and
// one they open later is simply a miss.
//
// Thread safety: safe for concurrent use. At most one thread of a process
// reclaims at a time; another thread that finds the work under way returns
// at once. Lock order: SharedUsage's lock, then LruPolicy::mu_ (briefly).
#pragma once

#include <cstdint>

#include "cache/chunk_store.h"
#include "cache/lru_policy.h"
#include "cache/shared_usage.h"
#include "ocifs/status.h"

namespace ocifs {

class Reclaimer {
 public:
  // Temp files older than this are a crashed writer's leftovers (a live
  // writer holds one for milliseconds).
  static constexpr int64_t kTempFileMaxAgeNs = 60'000'000'000;

  // Borrows store, usage and lru, which must outlive it. Units: bytes of chunk
  // files (header + data); low_water_bytes <= max_bytes.
  Reclaimer(const ChunkStore& store, SharedUsage& usage, LruPolicy& lru, uint64_t max_bytes,
            uint64_t low_water_bytes)
      : store_(store), usage_(usage), lru_(lru), max_bytes_(max_bytes), low_water_(low_water_bytes) {}
  Reclaimer(const Reclaimer&) = delete;
  Reclaimer& operator=(const Reclaimer&) = delete;

  // Cheap unless the shared usage is over max_bytes. Returns files evicted.
  [[nodiscard]] Result<uint64_t> MaybeReclaim();

  // Unconditionally (at open): under the lock, removes old temp files, counts
  // the files into the shared usage, and evicts if over the bound.
  [[nodiscard]] Result<uint64_t> Rescan();

 private:
  // The lock is held.
  Result<uint64_t> ScanAndEvict();

  const ChunkStore& store_;
  SharedUsage& usage_;
  LruPolicy& lru_;
  const uint64_t max_bytes_;
  const uint64_t low_water_;
};

}  // namespace ocifs
