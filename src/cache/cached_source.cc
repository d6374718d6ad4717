#include "cache/cached_source.h"

#include <algorithm>
#include <cstring>

#include "cache/cache_key.h"

namespace ocifs {

CachedSource::CachedSource(ByteSourcePtr inner, std::shared_ptr<ChunkCache> cache, std::string key)
    : inner_(std::move(inner)),
      cache_(std::move(cache)),
      key_(std::move(key)),
      key_status_(ValidateCacheKey(key_)) {}

std::unique_ptr<uint8_t[]> CachedSource::TakeScratch() const {
  {
    std::lock_guard lock(scratch_mu_);
    if (!scratch_.empty()) {
      auto buf = std::move(scratch_.back());
      scratch_.pop_back();
      return buf;
    }
  }
  return std::make_unique_for_overwrite<uint8_t[]>(cache_->chunk_size());
}

void CachedSource::ReturnScratch(std::unique_ptr<uint8_t[]> buf) const {
  std::lock_guard lock(scratch_mu_);
  if (scratch_.size() < kMaxPooled) scratch_.push_back(std::move(buf));
}

Result<size_t> CachedSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (!key_status_.ok()) return key_status_.WithContext(Describe());
  const uint64_t size = inner_->size();
  if (size == kUnknownSize) return inner_->ReadAt(offset, buf);
  if (offset >= size) return size_t{0};
  const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - offset));
  const uint64_t chunk_size = cache_->chunk_size();
  std::unique_ptr<uint8_t[]> scratch;
  Status st;
  size_t done = 0;
  while (done < want && st.ok()) {
    const uint64_t pos = offset + done;
    const uint64_t index = pos / chunk_size;
    const uint64_t chunk_start = index * chunk_size;
    const size_t chunk_len = static_cast<size_t>(std::min(chunk_size, size - chunk_start));
    const size_t in_chunk = static_cast<size_t>(pos - chunk_start);
    const size_t n = std::min(chunk_len - in_chunk, want - done);
    auto fetch = [&](std::span<uint8_t> out) { return ReadExactly(*inner_, chunk_start, out); };
    if (in_chunk == 0 && n == chunk_len) {
      st = cache_->Read(key_, index, buf.subspan(done, n), fetch);
    } else {
      if (!scratch) scratch = TakeScratch();
      std::span<uint8_t> chunk(scratch.get(), chunk_len);
      st = cache_->Read(key_, index, chunk, fetch);
      if (st.ok()) std::memcpy(buf.data() + done, chunk.data() + in_chunk, n);
    }
    if (!st.ok()) st = st.WithContext("cached " + Describe() + " chunk " + std::to_string(index));
    done += n;
  }
  if (scratch) ReturnScratch(std::move(scratch));
  if (!st.ok()) return st;
  return done;
}

}  // namespace ocifs
