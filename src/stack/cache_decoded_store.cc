#include "stack/cache_decoded_store.h"

namespace ocifs {

CacheDecodedStore::CacheDecodedStore(std::shared_ptr<ChunkCache> cache, std::string key)
    : cache_(std::move(cache)), key_(std::move(key)) {
  for (uint64_t index : cache_->StoredIndexes(key_)) known_.insert(index);
}

Result<bool> CacheDecodedStore::Get(uint64_t chunk_index, std::span<uint8_t> out) const {
  {
    std::lock_guard lock(mu_);
    if (!known_.contains(chunk_index)) return false;
  }
  Result<bool> hit = cache_->Lookup(key_, chunk_index, out);
  if (hit.ok() && !*hit) {
    std::lock_guard lock(mu_);  // evicted or dropped since: stop looking
    known_.erase(chunk_index);
  }
  return hit;
}

Result<bool> CacheDecodedStore::GetPart(uint64_t chunk_index, size_t length, size_t offset,
                                        std::span<uint8_t> out) const {
  {
    std::lock_guard lock(mu_);
    if (!known_.contains(chunk_index)) return false;
  }
  if (offset <= length && out.size() <= length - offset && cache_->ReadPart(key_, chunk_index, length, offset, out)) {
    return true;
  }
  return DecodedChunkStore::GetPart(chunk_index, length, offset, out);
}

Result<bool> CacheDecodedStore::GetStoredByAnyone(uint64_t chunk_index, std::span<uint8_t> out) const {
  Result<bool> hit = cache_->Lookup(key_, chunk_index, out);
  if (hit.ok() && *hit) {
    std::lock_guard lock(mu_);
    known_.insert(chunk_index);
  }
  return hit;
}

Result<bool> CacheDecodedStore::GetPartStoredByAnyone(uint64_t chunk_index, size_t offset,
                                                      std::span<uint8_t> out) const {
  if (cache_->ReadPart(key_, chunk_index, cache_->chunk_size(), offset, out)) return true;
  return DecodedChunkStore::GetPartStoredByAnyone(chunk_index, offset, out);  // whole, checked
}

Status CacheDecodedStore::Put(uint64_t chunk_index, std::span<const uint8_t> data) const {
  Status stored = cache_->Store(key_, chunk_index, data);
  if (stored.ok()) {
    std::lock_guard lock(mu_);
    known_.insert(chunk_index);
  }
  return stored;
}

bool CacheDecodedStore::Contains(uint64_t chunk_index) const {
  std::lock_guard lock(mu_);
  return known_.contains(chunk_index);
}

}  // namespace ocifs
