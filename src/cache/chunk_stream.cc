#include "cache/chunk_stream.h"

#include <algorithm>
#include <cstring>

#include "cache/chunk_store.h"

namespace ocifs {

ChunkStream::ChunkStream(ChunkCache& cache, std::string_view key, uint64_t first, std::span<const size_t> lengths,
                         size_t claim_ahead, const std::function<uint64_t()>& claimable)
    : cache_(cache),
      key_(key),
      first_(first),
      lengths_(lengths),
      n_(lengths.size()),
      claim_ahead_(std::max<size_t>(1, claim_ahead)),
      claimable_(claimable),
      claims_(lengths.size()) {}

void ChunkStream::ClaimUntil(size_t end) {
  considered_ = std::max(considered_, floor_);
  end = std::min(end, n_);
  if (claimable_) {
    const uint64_t limit = claimable_();
    end = std::min<size_t>(end, limit > first_ ? static_cast<size_t>(std::min<uint64_t>(limit - first_, n_)) : 0);
  }
  if (considered_ >= end) return;
  std::lock_guard lock(cache_.flights_mu_);
  for (; considered_ < end; ++considered_) {
    const uint64_t index = first_ + considered_;
    if (cache_.flights_.contains(ChunkCache::FlightKey{key_, index})) continue;
    FetchLeases::Lease lease;
    if (cache_.leases_) {
      lease = cache_.leases_->TryAcquire(key_, index);
      if (!lease.held()) continue;
    }
    if (cache_.store_->Exists(key_, index)) continue;
    auto flight = std::make_shared<ChunkCache::Flight>();
    cache_.flights_.emplace(ChunkCache::FlightKey{key_, index}, flight);
    claims_[considered_] = Claim{std::move(flight), std::move(lease),
                                 std::make_unique_for_overwrite<uint8_t[]>(lengths_[considered_])};
  }
}

void ChunkStream::EndClaim(size_t i, const Status& status) {
  Claim& c = claims_[i];
  const std::span<const uint8_t> data(c.buf.get(), lengths_[i]);
  if (status.ok()) {
    cache_.fetched_bytes_ += data.size();
    cache_.StoreFetched(key_, first_ + i, data);
  }
  cache_.Finish(ChunkCache::FlightKey{key_, first_ + i}, *c.flight, status, data);
  c = Claim{};
}

bool ChunkStream::Consume(uint64_t at, std::span<const uint8_t> piece) {
  if (at > taken_) return false;  // a gap: never from a well-behaved source
  if (at + piece.size() <= taken_) return true;  // bytes seen before a retry
  piece = piece.subspan(static_cast<size_t>(taken_ - at));
  taken_ += piece.size();
  floor_ = cur_ + (cur_filled_ > 0 ? 1 : 0);
  ClaimUntil(cur_ + claim_ahead_);  // what a paced stream may claim now
  while (!piece.empty() && cur_ < n_) {
    if (cur_filled_ == 0 && !claims_[cur_].flight) floor_ = cur_ + 1;  // its bytes pass unclaimed
    const size_t m = std::min(lengths_[cur_] - cur_filled_, piece.size());
    if (claims_[cur_].flight) std::memcpy(claims_[cur_].buf.get() + cur_filled_, piece.data(), m);
    cur_filled_ += m;
    piece = piece.subspan(m);
    if (cur_filled_ < lengths_[cur_]) break;
    if (claims_[cur_].flight) {
      EndClaim(cur_, Status::Ok());
      ++stored_;
    }
    ++cur_;
    cur_filled_ = 0;
    floor_ = cur_;
    ClaimUntil(cur_ + claim_ahead_);
    const size_t horizon = std::min(n_, cur_ + claim_ahead_);
    bool any = false;
    for (size_t i = cur_; i < horizon && !any; ++i) any = claims_[i].flight != nullptr;
    if (cur_ < n_ && !any && considered_ >= horizon) {
      skipping_ = true;
      return false;
    }
  }
  return true;
}

Result<uint64_t> ChunkStream::Run(const ChunkCache::StreamFn& stream) {
  size_t next = 0;  // chunks before it were stored or skipped
  Status failure;
  while (failure.ok()) {
    ClaimUntil(next + claim_ahead_);
    while (next < considered_ && !claims_[next].flight) ++next;
    if (next == n_) break;
    if (next == considered_) {  // all skipped so far: consider the next ones
      const size_t before = considered_;
      ClaimUntil(next + claim_ahead_);
      if (considered_ == before) break;  // none may be claimed yet: the caller starts another later
      continue;
    }
    uint64_t bytes = 0;
    for (size_t i = next; i < n_; ++i) bytes += lengths_[i];
    taken_ = 0;
    cur_ = next;
    cur_filled_ = 0;
    skipping_ = false;
    Status st = stream(first_ + next, bytes,
                       [this](uint64_t at, std::span<const uint8_t> piece) { return Consume(at, piece); });
    next = cur_;
    if (skipping_) continue;
    if (!st.ok()) {
      failure = st;
    } else if (cur_ < n_) {
      failure = Unavailable("stream of " + key_ + " ended at chunk " + std::to_string(first_ + cur_));
    }
  }
  if (!failure.ok()) {
    const Status handed = Unavailable("the stream fetching this chunk ended: " + failure.message());
    for (size_t i = next; i < n_; ++i) {
      if (claims_[i].flight) EndClaim(i, handed);
    }
    return failure;
  }
  return stored_;
}

}  // namespace ocifs
