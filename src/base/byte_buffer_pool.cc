#include "base/byte_buffer_pool.h"

#include <algorithm>

namespace ocifs {

std::shared_ptr<ByteBufferPool> ByteBufferPool::Make(size_t max_bytes) {
  return std::shared_ptr<ByteBufferPool>(new ByteBufferPool(max_bytes));
}

ByteBufferPool::Buffer ByteBufferPool::Take(size_t size) {
  std::unique_ptr<std::vector<uint8_t>> v;
  {
    std::lock_guard lock(mu_);
    // The smallest idle vector that holds `size` without reallocating.
    size_t best = idle_.size();
    for (size_t i = 0; i < idle_.size(); ++i) {
      const size_t cap = idle_[i]->capacity();
      if (cap >= size && (best == idle_.size() || cap < idle_[best]->capacity())) best = i;
    }
    if (best != idle_.size()) {
      v = std::move(idle_[best]);
      idle_[best] = std::move(idle_.back());
      idle_.pop_back();
      idle_bytes_ -= v->capacity();
    }
  }
  if (!v) {
    // A new one with room to spare, in whole MiBs: the next sizes of its kind
    // (frames' inputs vary in length) fit in it.
    v = std::make_unique<std::vector<uint8_t>>();
    v->reserve(size < kRoundUp ? size : (size + size / 8 + kRoundUp - 1) / kRoundUp * kRoundUp);
  }
  v->resize(size);
  std::weak_ptr<ByteBufferPool> pool = weak_from_this();
  return Buffer(v.release(), [pool](std::vector<uint8_t>* p) {
    if (auto alive = pool.lock()) {
      alive->Return(p);
    } else {
      delete p;
    }
  });
}

void ByteBufferPool::Return(std::vector<uint8_t>* v) {
  std::unique_ptr<std::vector<uint8_t>> owned(v);
  const size_t cap = owned->capacity();
  std::lock_guard lock(mu_);
  if (cap > max_bytes_) return;  // freed as `owned` ends
  // Room is made by freeing smaller idle vectors: the latest sizes are the likeliest next.
  while (idle_bytes_ + cap > max_bytes_) {
    auto smallest = std::min_element(idle_.begin(), idle_.end(),
                                     [](const auto& a, const auto& b) { return a->capacity() < b->capacity(); });
    if (smallest == idle_.end() || (*smallest)->capacity() > cap) return;
    idle_bytes_ -= (*smallest)->capacity();
    *smallest = std::move(idle_.back());
    idle_.pop_back();
  }
  idle_bytes_ += cap;
  idle_.push_back(std::move(owned));
}

size_t ByteBufferPool::idle_bytes() const {
  std::lock_guard lock(mu_);
  return idle_bytes_;
}

}  // namespace ocifs
