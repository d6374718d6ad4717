// ChunkStream: one ChunkCache::StreamChunks call (chunk_cache.h has its
// contract): a run of a blob's chunks fetched by one stream (one HTTP range),
// each chunk claimed a little ahead of the stream (a flight this process's
// readers wait for, and its fetch lease), stored as soon as its bytes are in,
// and the stream restarted past a run of chunks someone else has.
//
// Thread safety: one thread runs it (Run, and the stream's consumer calls on
// that thread); it takes the cache's flights_mu_ only while claiming and
// ending a chunk's flight. Lifetime: the cache outlives it; Run once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache/chunk_cache.h"
#include "cache/fetch_lease.h"
#include "ocifs/status.h"

namespace ocifs {

class ChunkStream {
 public:
  // The chunks [first, first + lengths.size()) of `key`, lengths[i] bytes
  // each (checked by Run); `claim_ahead` (>= 1) and `claimable` as StreamChunks's.
  ChunkStream(ChunkCache& cache, std::string_view key, uint64_t first, std::span<const size_t> lengths,
              size_t claim_ahead, const std::function<uint64_t()>& claimable);
  ChunkStream(const ChunkStream&) = delete;
  ChunkStream& operator=(const ChunkStream&) = delete;

  // StreamChunks: the chunks stored, or the stream's error once the claimed
  // chunks' waiters were handed kUnavailable.
  [[nodiscard]] Result<uint64_t> Run(const ChunkCache::StreamFn& stream);

 private:
  // A chunk this call fetches: its flight, lease and buffer.
  struct Claim {
    std::shared_ptr<ChunkCache::Flight> flight;  // null: not claimed (skipped, or done)
    FetchLeases::Lease lease;                    // held until the chunk is stored
    std::unique_ptr<uint8_t[]> buf;              // lengths[i] bytes, not zero-filled: streamed into
  };

  // Claims or skips the chunks [considered_, end) (end capped by the chunks
  // whose bytes passed unclaimed, and by `claimable`).
  void ClaimUntil(size_t end);
  // Stores chunk i (when status is OK) and ends its flight with status.
  void EndClaim(size_t i, const Status& status);
  // The consumer of the stream in progress (ChunkCache::StreamConsumer):
  // copies claimed chunks' bytes, stores each chunk as it completes, claims
  // ahead, and stops the stream (skipping_) when the next claim_ahead_ chunks
  // are none of this call's.
  bool Consume(uint64_t at, std::span<const uint8_t> piece);

  ChunkCache& cache_;
  const std::string key_;
  const uint64_t first_;
  const std::span<const size_t> lengths_;
  const size_t n_;
  const size_t claim_ahead_;
  const std::function<uint64_t()>& claimable_;

  std::vector<Claim> claims_;
  size_t considered_ = 0;  // chunks [0, considered_) were claimed or skipped
  size_t floor_ = 0;       // chunks before it had bytes pass unclaimed: never claimed
  uint64_t stored_ = 0;    // chunks stored
  // The stream in progress:
  uint64_t taken_ = 0;      // its bytes consumed
  size_t cur_ = 0;          // the chunk its next byte belongs to
  size_t cur_filled_ = 0;   // that chunk's bytes consumed
  bool skipping_ = false;   // stopped: claim_ahead_ chunks in a row to skip
};

}  // namespace ocifs
