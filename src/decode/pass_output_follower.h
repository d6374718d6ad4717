// PassOutputFollower: the reads of a mount whose gzip layer's first pass runs
// in another process (GzipFirstPass follows it: the pass lease is held
// there). That pass keeps its output in the cache's "<digest>:decoded" chunks
// and publishes how far it got (SharedPassProgress); a read behind that point
// is a copy of those chunks, served at once, instead of a wait for the whole
// pass to end. A read ahead of it waits for the pass to get there (the caller
// polls), as a read ahead of this process's own pass would.
//
// What is copied is what the other pass stored: each chunk checked by its CRC
// in the cache the first time this process reads it (later reads of it read
// only their bytes: DecodedChunkStore::GetPartStoredByAnyone), and all-zero
// chunks (not stored) by the pass's zero bits.
//
// Thread safety: safe for concurrent use (mu_ guards a counter only).
// Ownership: borrows `shared` (must outlive this), shares the store.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

#include "base/decoded_store.h"
#include "decode/shared_pass_progress.h"

namespace ocifs {

class PassOutputFollower {
 public:
  PassOutputFollower(const SharedPassProgress& shared, std::shared_ptr<DecodedChunkStore> store);
  PassOutputFollower(const PassOutputFollower&) = delete;
  PassOutputFollower& operator=(const PassOutputFollower&) = delete;

  enum class Outcome {
    kServed,   // out holds decompressed bytes [from, from + out.size())
    kAhead,    // the other pass has not published them yet: try again later
    kMissing,  // published, but a chunk is not in the store (evicted), or
               // published in chunks of another size: wait for the pass's end
  };
  Outcome Copy(uint64_t from, std::span<uint8_t> out) const;

  // Reads served so far (tests, logs).
  uint64_t served() const;

 private:
  const SharedPassProgress& shared_;
  const std::shared_ptr<DecodedChunkStore> store_;
  const uint64_t chunk_size_;
  mutable std::mutex mu_;  // guards served_; a leaf lock
  mutable uint64_t served_ = 0;
};

}  // namespace ocifs
