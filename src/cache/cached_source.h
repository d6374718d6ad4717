// CachedSource: the cache stage of the read path. A ByteSource over `inner`
// (a registry blob) that reads it chunk by chunk through a ChunkCache.
//
// ReadAt covers a read with whole chunks and reads them with one
// ChunkCache::ReadChunks: hits from disk, and each run of adjacent missing
// chunks with ONE inner ReadAt (one HTTP range), separate runs side by side
// on the scheduler's decode pool. A chunk the read covers whole is read
// straight into the caller's buffer; a read inside one chunk this process has
// checked before reads only its bytes (ChunkCache::ReadPart); otherwise a
// partly covered chunk (at most the first and the last) goes through a pooled
// scratch buffer (no allocation once the pool is warm).
//
// A read that is not such a hit is first offered to the strategies' Serve:
// a profile's prefetch keeps the profile's pieces (64 KiB, finer than the
// chunks) apart from the chunks, and serves the reads that fall in them.
//
// What is fetched beyond a read's own bytes is policy, not this stage's: the
// FetchStrategy objects its FetchPolicy asks for (fetch_policy.h) see every
// read, and fetch through the blob's BlobFetcher (read-ahead, the small miss,
// profiles, prefetch-all). Prefetch(offset, length) queues a kReadahead fetch.
//
// If inner's size is ByteSource::kUnknownSize, chunk lengths are unknown, so
// reads go to inner uncached.
//
// Thread safety: safe for concurrent use (scratch_mu_ guards the pool; the
// strategies and the fetcher guard themselves).
// Ownership: shares inner, the cache and the scheduler. The destructor
// cancels the background fetches and waits for those running.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache/blob_fetcher.h"
#include "cache/chunk_cache.h"
#include "cache/fetch_policy.h"
#include "ocifs/byte_source.h"

namespace ocifs {

class CachedSource final : public ByteSource {
 public:
  // key: the blob's digest "sha256:<hex>" (or with a suffix, see cache_key.h).
  // An invalid key makes every ReadAt fail with kInvalidArgument.
  CachedSource(ByteSourcePtr inner, std::shared_ptr<ChunkCache> cache, std::string key, FetchPolicy policy = {});
  ~CachedSource() override;

  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  // Queues a background fetch of the chunks of [offset, offset + length)
  // (at most kMaxPrefetchBytes) that are not cached, less those whose bytes
  // there a strategy holds (FetchStrategy::Holds: a profile's pieces): runs of
  // FetchPolicy::max_run_chunks, or of half the hint up to
  // kMaxStreamRunBytes if that is more (a first pass's read-ahead). Such a
  // long hint with FetchPolicy::stream_passes starts one stream of the blob
  // to its end instead (BlobFetcher::StartStream), and a hint of any length
  // that continues a running stream's paces it, unless a strategy holds some
  // of its bytes; after a stream of the blob failed, ranges again.
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override { return inner_->Describe(); }

  // Starts fetching `profile`'s chunks of this blob, as FetchPolicy::profile
  // does at construction (for a profile found after the stack was opened,
  // e.g. one shipped inside the image). Only the first profile given (here
  // or in the policy) is used; returns whether this one was started.
  bool StartProfile(const AccessProfile& profile);
  // The names of the strategies chosen for this blob, in order (tests, logs).
  std::vector<std::string> StrategyNames() const;

  // Blocks until queued background fetches (read-ahead, Prefetch,
  // prefetch_all) are done; for tests and benchmarks.
  void WaitForPrefetches() const;
  // Blocks until the profile's fetches are done; for tests and benchmarks.
  void WaitForProfile() const;
  // Blocks until the fetches reads are owed (BlobFetcher::QueueOwed) are
  // stored: at a clean unmount, after the last read, before the scheduler stops.
  void FinishOwedFetches() const {
    if (fetcher_) fetcher_->FinishOwed();
  }

  static constexpr uint64_t kMaxPrefetchBytes = 64ull << 20;
  static constexpr uint64_t kMaxStreamRunBytes = 8ull << 20;

 private:
  // A chunk-sized buffer from the pool (or new), and its return.
  std::unique_ptr<uint8_t[]> TakeScratch() const;
  void ReturnScratch(std::unique_ptr<uint8_t[]> buf) const;
  // The strategies' answer for a read none of whose chunks is at hand: true if one served it.
  [[nodiscard]] Result<bool> ServeMiss(const BlobRead& read, std::span<uint8_t> buf) const;
  // The whole-chunk path: hits from disk, misses fetched (one range per run).
  [[nodiscard]] Status ReadWholeChunks(const BlobRead& read, std::span<uint8_t> buf) const;

  const ByteSourcePtr inner_;
  const std::shared_ptr<ChunkCache> cache_;
  const std::string key_;
  const Status key_status_;  // ValidateCacheKey(key_)
  const bool background_;    // FetchPolicy::prefetch_threads > 0
  const size_t prefetch_run_chunks_;  // FetchPolicy::max_run_chunks
  const bool stream_passes_;          // FetchPolicy::stream_passes
  mutable std::atomic<uint64_t> stream_requests_{0};  // a stream's range requests queued (their lengths vary)

  static constexpr size_t kMaxPooled = 4;
  mutable std::mutex scratch_mu_;
  mutable std::vector<std::unique_ptr<uint8_t[]>> scratch_;  // guarded by scratch_mu_; chunk_size bytes each

  // Null when reads go to inner uncached (an invalid key or an unknown size).
  const std::shared_ptr<BlobFetcher> fetcher_;
  // Destroyed before the fetcher (their tasks use it). Each guards itself.
  const std::vector<std::unique_ptr<FetchStrategy>> strategies_;
  const bool wants_misses_;  // some strategy's OnMiss wants reads that miss
};

}  // namespace ocifs
