#include "decode/segment_cache.h"

#include <algorithm>

namespace ocifs {

SegmentCache::SegmentCache(uint64_t max_bytes, size_t max_entries)
    : max_bytes_(max_bytes), max_entries_(std::max<size_t>(max_entries, 1)) {}

Result<SegmentCache::Buffer> SegmentCache::GetOrLoad(uint64_t key, size_t min_size,
                                                     const Loader& loader) {
  std::unique_lock lock(mu_);
  for (;;) {
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.buffer->size() >= min_size) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.buffer;
    }
    auto in = inflight_.find(key);
    if (in == inflight_.end()) break;
    std::shared_ptr<Inflight> flight = in->second;
    cv_.wait(lock, [&] { return flight->done; });
    if (!flight->status.ok()) return flight->status;
    // Loaded, but maybe shorter than we need or already evicted: look again.
  }
  auto flight = std::make_shared<Inflight>();
  inflight_[key] = flight;
  lock.unlock();
  Result<Buffer> loaded = loader();
  lock.lock();
  inflight_.erase(key);
  flight->done = true;
  if (!loaded.ok()) {
    flight->status = loaded.status();
  } else {
    PutLocked(key, *loaded);
  }
  cv_.notify_all();
  return loaded;
}

void SegmentCache::Put(uint64_t key, Buffer buffer) {
  std::lock_guard lock(mu_);
  PutLocked(key, std::move(buffer));
}

void SegmentCache::PutLocked(uint64_t key, Buffer buffer) {
  if (!buffer || buffer->size() > max_bytes_) return;
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    if (it->second.buffer->size() >= buffer->size()) return;
    bytes_ -= it->second.buffer->size();
    lru_.erase(it->second.lru);
    entries_.erase(it);
  }
  lru_.push_front(key);
  bytes_ += buffer->size();
  entries_.emplace(key, Entry{std::move(buffer), lru_.begin()});
  while (!lru_.empty() && (bytes_ > max_bytes_ || entries_.size() > max_entries_)) {
    uint64_t victim = lru_.back();
    lru_.pop_back();
    auto v = entries_.find(victim);
    bytes_ -= v->second.buffer->size();
    entries_.erase(v);
  }
}

}  // namespace ocifs
