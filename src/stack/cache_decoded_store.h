// CacheDecodedStore: keeps decompressed chunks in the on-disk chunk cache
// under a key of their own: a single-frame zstd layer's ("<digest>:decoded"),
// a qcow2 disk's clusters ("<digest>:qcow2-clusters-<entry offset>").
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "base/decoded_store.h"
#include "cache/chunk_cache.h"

namespace ocifs {

// Lists the key's chunks on disk once, at construction; Get and Contains
// consult that list (plus what this store has Put since) before touching the
// disk, so a chunk that is not there costs no file lookup. Chunks another
// process stores later are not seen: a miss, decompressed again.
// Thread safety: safe for concurrent use (as the ChunkCache).
class CacheDecodedStore final : public DecodedChunkStore {
 public:
  CacheDecodedStore(std::shared_ptr<ChunkCache> cache, std::string key);

  uint32_t chunk_size() const override { return cache_->chunk_size(); }
  [[nodiscard]] Result<bool> Get(uint64_t chunk_index, std::span<uint8_t> out) const override;
  // Only the bytes asked for (ChunkCache::ReadPart) for a chunk this process
  // wrote or checked; otherwise the whole chunk, checked, as Get.
  [[nodiscard]] Result<bool> GetPart(uint64_t chunk_index, size_t length, size_t offset,
                                     std::span<uint8_t> out) const override;
  // Looks on disk whatever the list says (a chunk another process stored).
  [[nodiscard]] Result<bool> GetStoredByAnyone(uint64_t chunk_index, std::span<uint8_t> out) const override;
  // After this process has read (and so checked) the chunk whole once, reads
  // only the bytes asked for (ChunkCache::ReadPart).
  [[nodiscard]] Result<bool> GetPartStoredByAnyone(uint64_t chunk_index, size_t offset,
                                                   std::span<uint8_t> out) const override;
  [[nodiscard]] Status Put(uint64_t chunk_index, std::span<const uint8_t> data) const override;
  bool Contains(uint64_t chunk_index) const override;

 private:
  const std::shared_ptr<ChunkCache> cache_;
  const std::string key_;
  mutable std::mutex mu_;                      // guards known_
  mutable std::unordered_set<uint64_t> known_;  // on disk, as far as this process knows
};

}  // namespace ocifs
