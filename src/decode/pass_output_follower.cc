#include "decode/pass_output_follower.h"

#include <algorithm>

namespace ocifs {

PassOutputFollower::PassOutputFollower(const SharedPassProgress& shared, std::shared_ptr<DecodedChunkStore> store)
    : shared_(shared), store_(std::move(store)), chunk_size_(store_->chunk_size()) {}

PassOutputFollower::Chunk PassOutputFollower::Get(uint64_t index) const {
  {
    std::lock_guard lock(mu_);
    for (size_t k = 0; k < 2; ++k) {
      if (kept_index_[k] == index) return kept_[k];
    }
  }
  auto chunk = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(chunk_size_));
  Result<bool> got = store_->GetStoredByAnyone(index, *chunk);
  if (!got.ok() || !*got) return nullptr;
  std::lock_guard lock(mu_);
  kept_index_[next_slot_] = index;
  kept_[next_slot_] = chunk;
  next_slot_ ^= 1;
  return chunk;
}

PassOutputFollower::Outcome PassOutputFollower::Copy(uint64_t from, std::span<uint8_t> out) const {
  if (out.empty()) return Outcome::kServed;
  const SharedPassProgress::Published published = shared_.Load();
  if (published.chunk_size == 0) return Outcome::kAhead;  // nothing yet (or the pass restarted)
  if (published.chunk_size != chunk_size_) return Outcome::kMissing;
  const uint64_t to = from + out.size();
  if (to < from || to > published.count * chunk_size_) return Outcome::kAhead;
  for (uint64_t i = from / chunk_size_; i * chunk_size_ < to; ++i) {
    const uint64_t start = i * chunk_size_;
    const uint64_t a = std::max(from, start);
    const uint64_t b = std::min(to, start + chunk_size_);
    const std::span<uint8_t> part = out.subspan(static_cast<size_t>(a - from), static_cast<size_t>(b - a));
    if (shared_.IsZero(i)) {
      std::fill(part.begin(), part.end(), uint8_t{0});
      continue;
    }
    Chunk chunk = Get(i);
    if (!chunk) return Outcome::kMissing;
    std::copy_n(chunk->begin() + static_cast<ptrdiff_t>(a - start), part.size(), part.begin());
  }
  // A zero bit read after a restart in chunks of another size meant another
  // chunk: then the published word changed too.
  const SharedPassProgress::Published again = shared_.Load();
  if (again.chunk_size != published.chunk_size) return Outcome::kAhead;
  std::lock_guard lock(mu_);
  ++served_;
  return Outcome::kServed;
}

uint64_t PassOutputFollower::served() const {
  std::lock_guard lock(mu_);
  return served_;
}

}  // namespace ocifs
