// ZstdStreamSource: a zstd blob that cannot be split into frames (a single
// frame, or frames without content sizes) as a ByteSource. A sequential pass
// decompresses it into a DecodedChunkStore; reads are served from the store.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "base/decoded_store.h"
#include "decode/background_pass.h"
#include "decode/pass_progress.h"
#include "decode/segment_cache.h"
#include "decode/zero_ranges.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// Reads behind the pass's frontier (whole chunks stored) read the store; reads
// ahead of it wait. A chunk missing from the store (evicted) is decompressed
// again from the start of the blob by one restart at a time. size() is
// `known_size` (a single frame's content size) or kUnknownSize until the pass
// ends. After the pass fails, every read returns its error; once it is
// cancelled (the scheduler stops), reads it has not reached return kCancelled.
// The pass is a BackgroundPass on `scheduler` (null: Scheduler::Shared()); it
// keeps `read_ahead` compressed bytes hinted ahead of its reads
// (DecoderOptions::pass_read_ahead; 0: none), restarts none.
// Thread safety: all methods safe for concurrent use. The destructor cancels
// the pass and waits for it. Ownership: shares `compressed` and `store`.
class ZstdStreamSource final : public ByteSource {
 public:
  ZstdStreamSource(ByteSourcePtr compressed, std::shared_ptr<DecodedChunkStore> store, uint64_t known_size,
                   uint64_t cache_bytes, std::shared_ptr<Scheduler> scheduler = nullptr, uint64_t read_ahead = 0);
  ~ZstdStreamSource() override;

  // Starts the pass in the background (idempotent).
  void StartPass() const { pass_.Start(); }
  // Blocks until the pass ends; returns its status.
  [[nodiscard]] Status WaitUntilDecoded() const { return progress_.WaitUntilFinished(); }

  uint64_t size() const override { return size_.load(std::memory_order_acquire); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  // Holes: the runs of zeros (ZeroRanges::kMinRun or longer) the pass has
  // seen so far (a raw disk's empty space); everything else is data.
  Result<Extent> ExtentAt(uint64_t offset) const override { return zeros_.ExtentAt(offset, size()); }
  std::string Describe() const override { return "zstd(" + compressed_->Describe() + ")"; }
  Access access() const override { return Access::kStream; }
  bool KeepsDecoded() const override { return true; }  // its decoded store
  // How many times a missing chunk made decompression restart from the start.
  uint64_t restart_count() const { return restarts_.load(); }

 private:
  using ChunkFn = std::function<void(uint64_t index, std::span<const uint8_t> data)>;
  // Decompresses from the start, calling on_chunk for each chunk (the last one
  // may be short), stopping after chunk `stop_after`, with `ahead` bytes hinted
  // ahead of its reads. Returns the bytes decoded.
  [[nodiscard]] Result<uint64_t> Decode(uint64_t stop_after, const ChunkFn& on_chunk, uint64_t ahead = 0) const;
  void RunPass() const;
  [[nodiscard]] Result<SegmentCache::Buffer> Chunk(uint64_t index, size_t length, uint64_t last_index) const;
  [[nodiscard]] Result<SegmentCache::Buffer> Restart(uint64_t index, size_t length, uint64_t last_index) const;

  const ByteSourcePtr compressed_;
  const std::shared_ptr<DecodedChunkStore> store_;
  const uint32_t chunk_size_;
  const uint64_t read_ahead_;
  mutable std::atomic<uint64_t> size_;
  mutable std::atomic<uint64_t> restarts_{0};
  mutable SegmentCache cache_;
  mutable ZeroRanges zeros_;  // found by the pass, before its frontier passes them
  // Held by the one restart running; taken before the progress's lock, never
  // inside it (the progress's, the cache's and the store's are leaf locks).
  mutable std::mutex restart_mu_;
  // Decompressed bytes handed to the store (whole chunks; all once complete),
  // the pass's failure or cancellation (kCancelled).
  mutable PassProgress progress_;
  mutable BackgroundPass pass_;  // last: cancelled and waited for first (RunPass uses the members above)
};

}  // namespace ocifs
