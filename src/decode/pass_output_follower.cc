#include "decode/pass_output_follower.h"

#include <algorithm>

namespace ocifs {

PassOutputFollower::PassOutputFollower(const SharedPassProgress& shared, std::shared_ptr<DecodedChunkStore> store)
    : shared_(shared), store_(std::move(store)), chunk_size_(store_->chunk_size()) {}

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
    Result<bool> got = store_->GetPartStoredByAnyone(i, static_cast<size_t>(a - start), part);
    if (!got.ok() || !*got) return Outcome::kMissing;
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
