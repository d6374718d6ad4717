#include "disk/cluster_cache.h"

namespace ocifs {

CachedBuffer ClusterCache::LookupLocked(uint64_t key) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  auto node = it->second;
  lru_.splice(lru_.begin(), lru_, node);
  return node->value;
}

void ClusterCache::InsertLocked(uint64_t key, CachedBuffer value) {
  uint64_t charge = value->size();
  if (charge > capacity_ || index_.count(key) != 0) return;
  lru_.push_front(Node{key, std::move(value)});
  index_[key] = lru_.begin();
  used_ += charge;
  while (used_ > capacity_ && !lru_.empty()) {
    Node& victim = lru_.back();
    used_ -= victim.value->size();
    index_.erase(victim.key);
    lru_.pop_back();
  }
}

CachedBuffer ClusterCache::Lookup(uint64_t key) {
  std::lock_guard<std::mutex> lock(mu_);
  return LookupLocked(key);
}

Result<CachedBuffer> ClusterCache::GetOrLoad(uint64_t key, const Loader& load) {
  std::shared_ptr<InFlight> flight;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (CachedBuffer hit = LookupLocked(key)) return hit;
    auto it = in_flight_.find(key);
    if (it != in_flight_.end()) {
      // Another caller is loading this key: wait for its result.
      std::shared_ptr<InFlight> other = it->second;
      loaded_.wait(lock, [&] { return other->done; });
      if (!other->status.ok()) return other->status;
      return other->value;
    }
    flight = std::make_shared<InFlight>();
    in_flight_[key] = flight;
    ++loads_;
  }

  Result<CachedBuffer> loaded = load();

  {
    std::lock_guard<std::mutex> lock(mu_);
    flight->done = true;
    if (loaded.ok() && *loaded == nullptr) loaded = Internal("cache loader returned no buffer");
    if (loaded.ok()) {
      flight->value = *loaded;
      InsertLocked(key, *loaded);
    } else {
      flight->status = loaded.status();
    }
    in_flight_.erase(key);
  }
  loaded_.notify_all();
  return loaded;
}

uint64_t ClusterCache::used_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

size_t ClusterCache::entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

uint64_t ClusterCache::loads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return loads_;
}

}  // namespace ocifs
