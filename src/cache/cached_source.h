// CachedSource: the cache stage of the read path. A ByteSource over `inner`
// (a registry blob) that reads it chunk by chunk through a ChunkCache.
//
// ReadAt covers a read with whole chunks and reads them with one
// ChunkCache::ReadChunks: hits from disk, and each run of adjacent missing
// chunks with ONE inner ReadAt (one HTTP range), separate runs in parallel.
// A chunk the read covers whole is read straight into the caller's buffer; a
// read inside one chunk this process has checked before reads only its bytes
// (ChunkCache::ReadPart); otherwise a partly covered chunk (at most the first
// and the last) goes through a pooled scratch buffer (no allocation once the
// pool is warm).
//
// Read-ahead: every read is shown to a ReadaheadPolicy; on sequential access
// it asks for a growing window ahead (1, 2, 4 .. readahead.max), which tasks
// of the mount's Scheduler (class kReadahead, at most prefetch_threads of
// this source at once) fetch in the background, max_run_chunks per inner read,
// deduplicated with reads by the cache's single flight. Random reads fetch
// only the chunks they touch (with miss_group_bytes, the aligned group around
// them). Prefetch(offset, length) queues the same kind
// of background fetch. With prefetch_all, the whole blob is fetched in idle
// time, one run per kPrefetchAll task, yielding to reads (Scheduler::Foreground),
// paced to prefetch_all_rate bytes per second when that is set.
//
// Access profile (access_profile.h): with a recorder, every read's bytes are
// recorded under key (in the recorder's unit); with a profile naming key (of
// any chunk size, converted to the cache's), kProfilePrefetch tasks fetch
// the profile's chunks from construction on, in its order, profile_threads
// runs at a time (adjacent chunks of the profile coalesced, profile_run_chunks
// per inner read), deduplicated with reads by the single flight.
//
// If inner's size is ByteSource::kUnknownSize, chunk lengths are unknown, so
// reads go to inner uncached.
//
// Thread safety: safe for concurrent use (scratch_mu_ guards the pool; the
// policy and the task groups guard themselves).
// Ownership: shares inner, the cache and the scheduler. The destructor
// cancels the background fetches and waits for those running.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache/access_profile.h"
#include "cache/chunk_cache.h"
#include "cache/readahead_policy.h"
#include "ocifs/byte_source.h"
#include "sched/task_group.h"

namespace ocifs {

struct CachedSourceOptions {
  // Runs the background fetches; null: Scheduler::Shared().
  std::shared_ptr<Scheduler> scheduler;
  ReadaheadOptions readahead;          // readahead.max = 0: no read-ahead
  unsigned prefetch_threads = 3;       // background fetches in flight; 0: no read-ahead, no Prefetch
  size_t max_run_chunks = 2;           // chunks per background inner read
  bool prefetch_all = false;           // fetch the whole blob in idle time
  size_t prefetch_all_run_chunks = 2;  // chunks per idle step (the most a read waits behind it)
  uint64_t prefetch_all_rate = 0;      // bytes per second prefetch_all may fetch on average; 0: no cap
  std::shared_ptr<AccessRecorder> recorder;       // records the chunks reads touch; null: none
  std::shared_ptr<const AccessProfile> profile;   // fetches its chunks of this blob ahead; null: none
  // A read of at most a quarter of a chunk (or of a miss group, below) whose chunks are neither on disk nor
  // in flight fetches just its own bytes (one short range request) while its
  // whole chunks follow in the background: a random read waits for a round
  // trip, not for a chunk's transfer. Needs prefetch_threads > 0.
  bool exact_small_misses = true;
  // A read none of whose chunks is on disk or in flight fetches its aligned
  // group of this many bytes (the group's missing chunks, one range each run),
  // as a chunk of that size would be fetched; an exact small miss queues the
  // group in the background. So small chunks (a precise profile) keep the
  // neighbourhood a large chunk brings on a miss. 0 or at most chunk_size: off.
  uint64_t miss_group_bytes = 0;
  unsigned profile_threads = 8;                   // profile runs in flight
  size_t profile_run_chunks = 1;                  // chunks per profile run
};

class CachedSource final : public ByteSource {
 public:
  // key: the blob's digest "sha256:<hex>" (or with a suffix, see cache_key.h).
  // An invalid key makes every ReadAt fail with kInvalidArgument.
  CachedSource(ByteSourcePtr inner, std::shared_ptr<ChunkCache> cache, std::string key,
               CachedSourceOptions options = {});
  ~CachedSource() override;

  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  // Queues a background fetch of the chunks of [offset, offset + length)
  // (at most kMaxPrefetchBytes) that are not cached.
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override { return inner_->Describe(); }

  // Blocks until queued background fetches (and prefetch_all) are done; for tests and benchmarks.
  void WaitForPrefetches() const { fetches_.Wait(); }
  // Blocks until the profile's fetches are done; for tests and benchmarks.
  void WaitForProfile() const;
  // Starts fetching `profile`'s chunks of this blob, as options.profile does
  // at construction (for a profile found after the stack was opened, e.g.
  // one shipped inside the image). Only the first profile given (here or in
  // the options) is used; returns whether this one was started.
  bool StartProfile(const AccessProfile& profile) const;

  static constexpr uint64_t kMaxPrefetchBytes = 64ull << 20;

 private:
  // A chunk-sized buffer from the pool (or new), and its return.
  std::unique_ptr<uint8_t[]> TakeScratch() const;
  void ReturnScratch(std::unique_ptr<uint8_t[]> buf) const;
  // Queues background fetches of chunks [first, end) in runs of max_run_chunks;
  // false if the queue dropped some (it was full).
  bool QueueChunks(uint64_t first, uint64_t end) const;
  // Fetches (and stores) up to `count` missing chunks from `first`; the fetch
  // of a run. Returns how many chunks it fetched.
  Result<uint64_t> FetchChunks(uint64_t first, uint64_t count, size_t max_run) const;
  // Whether none of chunks [first, last] is on disk or in flight (a hint).
  bool AllMissing(uint64_t first, uint64_t last) const;
  // The chunks [first, end) of the miss_group_bytes groups around chunks [first, last].
  std::pair<uint64_t, uint64_t> MissGroup(uint64_t first, uint64_t last) const;
  // The exact_small_misses path for a read whose chunks are all missing:
  // true (buf filled, chunks queued) if it served the read.
  [[nodiscard]] Result<bool> ReadSmallMiss(uint64_t offset, std::span<uint8_t> buf, uint64_t first,
                                           uint64_t last) const;
  // One step of prefetch_all: the next run of missing chunks; posts the next step.
  void PrefetchAllStep() const;
  void ProfileWorker() const;

  const ByteSourcePtr inner_;
  const std::shared_ptr<ChunkCache> cache_;
  const std::string key_;
  const Status key_status_;  // ValidateCacheKey(key_)
  const CachedSourceOptions options_;
  const uint64_t group_chunks_;  // chunks per miss group (1: none)
  mutable ReadaheadPolicy readahead_;

  static constexpr size_t kMaxPooled = 4;
  mutable std::mutex scratch_mu_;
  mutable std::vector<std::unique_ptr<uint8_t[]>> scratch_;  // guarded by scratch_mu_; chunk_size bytes each
  mutable std::atomic<uint64_t> prefetch_all_next_{0};       // next chunk prefetch_all looks at (one idle step at a time)

  // The profile's runs (first chunk, count), in order; workers take the next one.
  mutable std::atomic<bool> profile_started_{false};  // StartProfile ran (it sets the members below once)
  mutable std::vector<std::pair<uint64_t, uint64_t>> profile_runs_;
  mutable std::atomic<size_t> profile_next_{0};
  mutable std::mutex profile_mu_;
  mutable std::condition_variable profile_cv_;
  mutable unsigned profile_running_ = 0;  // guarded by profile_mu_

  // Last: destroyed (cancelled, running tasks waited for) first; their tasks use the members above.
  mutable TaskGroup fetches_;        // read-ahead, Prefetch, a small miss's group, prefetch_all
  mutable TaskGroup profile_tasks_;  // the profile's workers
};

}  // namespace ocifs
