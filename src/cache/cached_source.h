// CachedSource: the cache stage of the read path. A ByteSource over `inner`
// (a registry blob) that reads it chunk by chunk through a ChunkCache.
//
// ReadAt splits a read into chunks; each is read through the cache, and a miss
// fetches the whole chunk range [index * chunk_size, +chunk length) from
// inner with one ReadAt. Chunks of one read are read one after another: reads
// from FUSE are at most 128 KiB, so a read spans at most two 1 MiB chunks.
// A chunk the read covers whole is read straight into the caller's buffer;
// a partly covered one goes through a pooled scratch buffer (no allocation
// once the pool is warm).
//
// If inner's size is ByteSource::kUnknownSize, chunk lengths are unknown, so
// reads go to inner uncached.
//
// Thread safety: safe for concurrent use (scratch_mu_ guards the pool).
// Ownership: shares inner and the cache.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache/chunk_cache.h"
#include "ocifs/byte_source.h"

namespace ocifs {

class CachedSource final : public ByteSource {
 public:
  // key: the blob's digest "sha256:<hex>" (or with a suffix, see cache_key.h).
  // An invalid key makes every ReadAt fail with kInvalidArgument.
  CachedSource(ByteSourcePtr inner, std::shared_ptr<ChunkCache> cache, std::string key);

  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  std::string Describe() const override { return inner_->Describe(); }

 private:
  // A chunk-sized buffer from the pool (or new), and its return.
  std::unique_ptr<uint8_t[]> TakeScratch() const;
  void ReturnScratch(std::unique_ptr<uint8_t[]> buf) const;

  const ByteSourcePtr inner_;
  const std::shared_ptr<ChunkCache> cache_;
  const std::string key_;
  const Status key_status_;  // ValidateCacheKey(key_)

  static constexpr size_t kMaxPooled = 4;
  mutable std::mutex scratch_mu_;
  mutable std::vector<std::unique_ptr<uint8_t[]>> scratch_;  // guarded by scratch_mu_; chunk_size bytes each
};

}  // namespace ocifs
