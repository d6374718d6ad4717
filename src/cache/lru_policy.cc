#include "cache/lru_policy.h"

#include <algorithm>
#include <numeric>

namespace ocifs {

uint32_t LruPolicy::BlobId(std::string_view key, bool create) {
  auto it = blobs_.find(key);
  if (it != blobs_.end()) return it->second;
  if (!create) return UINT32_MAX;
  uint32_t id = static_cast<uint32_t>(blobs_.size());
  blobs_.emplace(std::string(key), id);
  return id;
}

bool LruPolicy::Use(std::string_view key, uint64_t index, int64_t now_ns, bool written) {
  std::lock_guard lock(mu_);
  ChunkId id{BlobId(key, true), index};
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    order_.push_front(Entry{id, now_ns, now_ns});
    entries_.emplace(id, order_.begin());
    if (order_.size() > max_entries_) {
      entries_.erase(order_.back().id);
      order_.pop_back();
    }
    return !written;
  }
  Order::iterator e = it->second;
  order_.splice(order_.begin(), order_, e);  // iterators stay valid
  e->last_use = std::max(e->last_use, now_ns);
  bool touch = written || now_ns - e->last_touch >= touch_interval_ns_;
  if (touch) e->last_touch = now_ns;
  return touch && !written;
}

void LruPolicy::Forget(std::string_view key, uint64_t index) {
  std::lock_guard lock(mu_);
  uint32_t blob = BlobId(key, false);
  if (blob == UINT32_MAX) return;
  auto it = entries_.find(ChunkId{blob, index});
  if (it == entries_.end()) return;
  order_.erase(it->second);
  entries_.erase(it);
}

int64_t LruPolicy::LastUse(std::string_view key, uint64_t index) const {
  std::lock_guard lock(mu_);
  auto b = blobs_.find(key);
  if (b == blobs_.end()) return 0;
  auto it = entries_.find(ChunkId{b->second, index});
  return it == entries_.end() ? 0 : it->second->last_use;
}

size_t LruPolicy::tracked() const {
  std::lock_guard lock(mu_);
  return order_.size();
}

std::vector<size_t> LruPolicy::ChooseVictims(const std::vector<Candidate>& candidates,
                                             uint64_t bytes_to_free) {
  std::vector<size_t> order(candidates.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return candidates[a].recency_ns < candidates[b].recency_ns;
  });
  uint64_t freed = 0;
  size_t n = 0;
  while (n < order.size() && freed < bytes_to_free) freed += candidates[order[n++]].bytes;
  order.resize(n);
  return order;
}

}  // namespace ocifs
