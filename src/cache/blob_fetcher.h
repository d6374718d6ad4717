// BlobFetcher: fetches chunks of one blob into the chunk cache, now on the
// calling thread or as background tasks on the mount's Scheduler. The
// mechanism every FetchStrategy of the blob shares: policy decides what to
// fetch, this only fetches (deduplicated with reads by the cache's single
// flight).
//
// Thread safety: safe for concurrent use. Ownership: shares inner, the cache
// and the scheduler. The destructor cancels the queued fetches and waits for
// the running ones; a clean unmount first finishes the owed ones (QueueOwed).
// Units: chunk indexes of the cache's chunk size; bytes of the blob.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "cache/chunk_cache.h"
#include "ocifs/byte_source.h"
#include "sched/task_group.h"

namespace ocifs {

class BlobFetcher {
 public:
  // inner's size must be known. background_fetches: the blob's queued
  // fetches (Queue, Post) running at once at most (>= 1).
  BlobFetcher(ByteSourcePtr inner, std::shared_ptr<ChunkCache> cache, std::string key,
              std::shared_ptr<Scheduler> scheduler, unsigned background_fetches);
  BlobFetcher(const BlobFetcher&) = delete;
  BlobFetcher& operator=(const BlobFetcher&) = delete;

  const std::string& key() const { return key_; }
  const std::shared_ptr<Scheduler>& scheduler() const { return scheduler_; }
  std::string Describe() const { return inner_->Describe(); }
  uint64_t size() const { return size_; }
  uint32_t chunk_size() const { return cache_->chunk_size(); }
  uint64_t chunk_count() const { return chunk_count_; }

  // Fetches (and stores) the chunks of [first, first + count) that are
  // neither on disk nor in flight, max_run per range request, on the calling
  // thread. Returns how many it fetched.
  [[nodiscard]] Result<uint64_t> Fetch(uint64_t first, uint64_t count, size_t max_run) const;
  // Queues the fetch of chunks [first, end) as tasks of class `cls`, `run`
  // chunks each; false if some were refused (kMaxQueued wait already, or
  // stopping). A hint: dropped when the scheduler stops.
  bool Queue(TaskClass cls, uint64_t first, uint64_t end, size_t run) const { return Post(false, cls, first, end, run); }
  // Queue (kReadahead, the same queue and caps) for chunks that reads already
  // needed and were served around (the rest of an exact miss's chunks,
  // readahead_strategy.h): not a hint, so FinishOwed waits for them, and a
  // clean unmount stores them instead of dropping them with the scheduler's
  // queue (a remount would fetch them again).
  bool QueueOwed(uint64_t first, uint64_t end, size_t run) const;
  // Blocks until no owed fetch waits or runs. Call before the scheduler
  // stops (it drops what is queued), with no read in progress. From then on
  // the first owed fetch that fails drops the rest, so an unreachable
  // registry costs one timeout, not one per queued fetch.
  void FinishOwed() const;
  // Starts a stream of chunks [first, chunk_count) as one kReadahead task
  // (ChunkCache::StreamChunks: one request, each chunk stored as it
  // arrives), paced: it takes no byte at or past `limit` (blob bytes,
  // rounded up to a chunk's end; Extend raises it) until it is raised. false if a stream runs, one failed
  // before (its blob is then read in runs: a registry that cuts long
  // transfers would cut each), or the task was refused.
  bool StartStream(uint64_t first, uint64_t limit) const;
  // Raises the running stream's limit to `limit`, for a hint of bytes from
  // `offset` that continues what it was told (offset at most its limit);
  // false if no stream runs, or `offset` lies before its start or past its
  // limit (a read elsewhere: fetched on its own).
  bool ExtendStream(uint64_t offset, uint64_t limit) const;
  // Whether a running stream will bring blob offset `offset` soon: at or
  // after its start, before its limit plus what it claims ahead. Read-ahead
  // leaves such bytes to it (a hint).
  bool StreamBrings(uint64_t offset) const;
  // Whether none of chunks [first, last] is on disk or in flight (a hint).
  bool AllMissing(uint64_t first, uint64_t last) const;
  // Reads buf from the blob itself, around the cache (a read's own bytes
  // while its chunks come behind it); counted as a miss of the cache.
  [[nodiscard]] Status ReadAround(uint64_t offset, std::span<uint8_t> buf) const;
  // Reads buf from the blob itself, around the cache, counting nothing: bytes
  // a strategy keeps elsewhere (a profile's pieces, profile_pieces.h).
  [[nodiscard]] Status ReadRange(uint64_t offset, std::span<uint8_t> buf) const {
    return ReadExactly(*inner_, offset, buf);
  }
  // Several ranges from the blob in one request, around the cache, counting
  // nothing (ByteSource::ReadRanges; kUnsupported: one range per request).
  [[nodiscard]] Status ReadRanges(std::span<const ByteRange> ranges, const ByteSource::RangesConsumer& consume) const {
    return inner_->ReadRanges(ranges, consume);
  }
  const std::shared_ptr<ChunkCache>& cache() const { return cache_; }
  // Blocks until no queued fetch (hint or owed) waits or runs (tests, benchmarks).
  void Wait() const {
    stream_task_.Wait();
    tasks_.Wait();
  }

  static constexpr size_t kMaxQueued = 64;
  // How far ahead of its bytes a stream claims chunks (readers of them wait
  // for it): more than a pass's read (SequentialReader::kDefaultPiece), so
  // the pass never finds the next chunk unclaimed and fetches it itself.
  static constexpr uint64_t kStreamClaimBytes = 8ull << 20;

 private:
  // The count of owed fetches not ended. Shared with their tokens: the
  // scheduler may destroy a task (and its token) after the fetcher, once the
  // task's body has returned and the fetcher's destructor stopped waiting.
  struct OwedCount {
    std::mutex mu;
    std::condition_variable cv;
    size_t owed = 0;  // guarded by mu
  };
  // Counts one owed fetch from its queueing until its task is destroyed (run,
  // refused or dropped: the scheduler destroys every task it was given).
  struct OwedToken {
    explicit OwedToken(std::shared_ptr<OwedCount> count);
    ~OwedToken();
    const std::shared_ptr<OwedCount> count;
  };
  bool Post(bool owed, TaskClass cls, uint64_t first, uint64_t end, size_t run) const;

  const ByteSourcePtr inner_;
  const std::shared_ptr<ChunkCache> cache_;
  const std::string key_;
  const std::shared_ptr<Scheduler> scheduler_;
  const uint64_t size_;
  const uint64_t chunk_count_;
  mutable std::atomic<bool> finishing_{false};  // FinishOwed was called
  const std::shared_ptr<OwedCount> owed_ = std::make_shared<OwedCount>();
  // The stream (StartStream); its task waits on stream_cv_ at its limit.
  mutable std::mutex stream_mu_;
  mutable std::condition_variable stream_cv_;
  mutable bool streaming_ = false;      // guarded by stream_mu_
  mutable bool stream_failed_ = false;  // guarded by stream_mu_
  mutable uint64_t stream_start_ = 0;   // guarded by stream_mu_: blob offset
  mutable uint64_t stream_limit_ = 0;   // guarded by stream_mu_: blob offset
  // The stream's limit rounded up to a chunk's end (at most the blob's end):
  // a chunk it claims never waits for the next hint to be completed.
  uint64_t StreamLimitLocked() const;
  // Waits until blob offset `at` is below StreamLimitLocked() and returns
  // it; 0 if the fetcher is stopping.
  uint64_t WaitForStreamLimit(uint64_t at) const;
  void StreamTask(uint64_t first) const;
  mutable TaskGroup tasks_;
  // The stream's task, apart from tasks_: it runs as long as the blob takes
  // to arrive, and must not hold one of the fetches' background_fetches slots.
  mutable TaskGroup stream_task_;  // last: cancelled and waited for first
};

}  // namespace ocifs
