// FetchPolicy: what a blob read through the cache fetches beyond each read's
// own bytes, and the one place where it becomes FetchStrategy objects
// (fetch_strategy.h) beside the cache stage.
//
// The knobs are a mount's choices (--readahead, --miss-fetch, --prefetch-all,
// --prefetch-rate, profiles) plus tuning in chunks of the cache's size.
// ForCache adapts a policy tuned for 1 MiB chunks to a cache: its chunk size
// (runs keep the same bytes per request; more profile runs in flight for
// small chunks) and its bound (windows that would evict what they fetch are
// shrunk or turned off).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "cache/access_profile.h"
#include "cache/fetch_strategy.h"
#include "cache/range_plan.h"
#include "cache/readahead_policy.h"
#include "sched/scheduler.h"

namespace ocifs {

class BlobFetcher;

struct FetchPolicy {
  // Runs the background fetches; null: Scheduler::Shared().
  std::shared_ptr<Scheduler> scheduler;
  ReadaheadOptions readahead;          // readahead.max = 0: no read-ahead
  unsigned prefetch_threads = 3;       // background fetches of the blob in flight; 0: none (no read-ahead, no Prefetch)
  size_t max_run_chunks = 2;           // chunks per background range request
  bool prefetch_all = false;           // fetch the whole blob in idle time
  size_t prefetch_all_run_chunks = 2;  // chunks per idle step (the most a read waits behind it)
  uint64_t prefetch_all_rate = 0;      // bytes per second prefetch_all may fetch on average; 0: no cap
  // A sequential pass's long read-ahead hint (CachedSource::Prefetch) starts
  // ONE stream of the blob to its end, paced by the pass's hints
  // (BlobFetcher::StartStream), instead of range requests of up to
  // CachedSource::kMaxStreamRunBytes: one request (less work for registry and
  // proxy, no round trip between requests) and a chunk stored as it arrives.
  bool stream_passes = true;
  std::shared_ptr<AccessRecorder> recorder;      // records the bytes reads touch; null: none
  std::shared_ptr<const AccessProfile> profile;  // fetches its chunks of this blob ahead; null: none
  // MissStrategy: a small read that misses fetches its own bytes first (needs prefetch_threads > 0) ...
  bool exact_small_misses = true;
  // ... and a miss brings its aligned group of this many bytes. 0 or at most a chunk: off.
  uint64_t miss_group_bytes = 0;
  unsigned profile_threads = 8;    // profile runs in flight
  size_t profile_run_chunks = 1;   // chunks per profile run
  // A profile finer than the chunks is fetched as its own pieces
  // (profile_pieces.h): this many requests in flight (0: fetch whole chunks
  // instead), runs planned with these options (range_plan.h).
  unsigned profile_piece_threads = 16;
  RangePlanOptions profile_piece_plan;
  // The smallest piece (bytes) a profile finer than the chunks is fetched in:
  // its units merge up to it. 64 KiB: a read of an uncompressed layer (a
  // qcow2 cluster, the kernel's read-ahead) may differ a little from the
  // recorded one, and a read touching a piece the profile does not name goes
  // to the chunks. A profile fitted to an artifact's gzip index names the
  // exact bytes each span's read reads: its layer takes the recording's 4 KiB
  // (ProfilePrefetch::kMinPieceBytes).
  uint32_t profile_min_piece = 64u << 10;

  // `tuned` (for 1 MiB chunks) adapted to a cache of `chunk_size` bytes per
  // chunk bounded by `cache_bytes`: read-ahead at most a 16th of the cache
  // and none (nor prefetch_all) below two chunks; runs scaled to the same
  // bytes per request; up to 32 profile runs in flight, 8 MiB in all.
  static FetchPolicy ForCache(FetchPolicy tuned, uint32_t chunk_size, uint64_t cache_bytes);
};

// The strategies `policy` asks for, fetching through `fetcher`, in the order
// a read consults them (recording, read-ahead, misses, profile, prefetch-all).
std::vector<std::unique_ptr<FetchStrategy>> MakeFetchStrategies(const FetchPolicy& policy,
                                                                std::shared_ptr<const BlobFetcher> fetcher);

}  // namespace ocifs
