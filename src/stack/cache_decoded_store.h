// CacheDecodedStore: keeps a decoder's decompressed chunks (single-frame
// zstd) in the on-disk chunk cache, under the key "<digest>:decoded".
#pragma once

#include <memory>
#include <string>

#include "cache/chunk_cache.h"
#include "base/decoded_store.h"

namespace ocifs {

// Thread safety: as the ChunkCache (safe for concurrent use).
class CacheDecodedStore final : public DecodedChunkStore {
 public:
  CacheDecodedStore(std::shared_ptr<ChunkCache> cache, std::string key)
      : cache_(std::move(cache)), key_(std::move(key)) {}

  uint32_t chunk_size() const override { return cache_->chunk_size(); }
  Result<bool> Get(uint64_t chunk_index, std::span<uint8_t> out) const override {
    return cache_->Lookup(key_, chunk_index, out);
  }
  Status Put(uint64_t chunk_index, std::span<const uint8_t> data) const override {
    return cache_->Store(key_, chunk_index, data);
  }

 private:
  std::shared_ptr<ChunkCache> cache_;
  std::string key_;
};

}  // namespace ocifs
