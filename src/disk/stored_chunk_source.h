// StoredChunkSource: a raw disk read through a DecodedChunkStore. Every chunk
// a read has to decompress from `inner` (the disk file in a gzip or zstd
// layer) is also put in the store, so a page-cache refill or the next mount
// on the node copies it from there instead of fetching and decompressing the
// layer again: what the qcow2 view's cluster store does for compressed
// clusters, for a raw disk's bytes.
//
// A read is served chunk by chunk (chunk = store->chunk_size() bytes of the
// file): stored chunks are copied from the store; each run of consecutive
// chunks that are not is read from inner with one ReadAt of whole chunks, and
// every such chunk is put in the store (Put, by the reading thread), except
// all-zero ones, which are remembered in memory for this object's life instead
// (a raw disk is mostly zeros, and keeping zeros would only fill the cache).
// Extents (holes) and prefetch hints go to inner.
//
// Thread safety: safe for concurrent use (inner and the store are; zeros_mu_
// guards the zero set). Ownership: shares inner and the store.
// Units: bytes; chunk i covers file bytes [i * chunk, (i + 1) * chunk).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/decoded_store.h"
#include "ocifs/byte_source.h"

namespace ocifs {

class StoredChunkSource final : public ByteSource {
 public:
  // inner's size must be known (not kUnknownSize); store non-null.
  StoredChunkSource(ByteSourcePtr inner, std::shared_ptr<DecodedChunkStore> store);

  uint64_t size() const override { return size_; }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  Result<Extent> ExtentAt(uint64_t offset) const override { return inner_->ExtentAt(offset); }
  // Forwarded to inner unless every chunk of the range is stored or known zero.
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override { return inner_->Describe(); }

 private:
  bool KnownZero(uint64_t index) const;
  void MarkZero(uint64_t index) const;
  size_t ChunkLength(uint64_t index) const;
  // Reads chunks [first, end) (all not stored) from inner into `out` (their
  // bytes back to back) and keeps them: the store, or the zero set.
  Status ReadAndKeep(uint64_t first, uint64_t end, std::span<uint8_t> out) const;

  const ByteSourcePtr inner_;
  const std::shared_ptr<DecodedChunkStore> store_;
  const uint64_t size_;
  const uint64_t chunk_;
  mutable std::mutex zeros_mu_;
  mutable std::vector<bool> zeros_;  // guarded by zeros_mu_; one per chunk
};

}  // namespace ocifs
