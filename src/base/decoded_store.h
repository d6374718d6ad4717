// DecodedChunkStore: where a stage keeps what it decompressed, in fixed-size
// chunks: a decoder that cannot seek (a single zstd frame) its layer, the
// qcow2 view its compressed clusters.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

// Chunk i holds decompressed bytes [i * chunk_size(), (i + 1) * chunk_size()),
// the last chunk of a layer shorter. A store may drop chunks at any time (a
// bounded cache); the decoder then decompresses them again.
// Thread safety: implementations are safe for concurrent use.
class DecodedChunkStore {
 public:
  virtual ~DecodedChunkStore() = default;
  // Bytes per chunk, > 0.
  virtual uint32_t chunk_size() const = 0;
  // Copies chunk `chunk_index` into `out`, whose size is the chunk's length.
  // false = not stored (never stored, dropped, or stored with another length).
  [[nodiscard]] virtual Result<bool> Get(uint64_t chunk_index, std::span<uint8_t> out) const = 0;
  // Copies bytes [offset, offset + out.size()) of chunk `chunk_index`, whose
  // length is `length`, into `out` (offset + out.size() <= length); false =
  // not stored, as Get. The default reads the whole chunk (Get); a store may
  // read only those bytes (a read behind a pass then costs what it asks for).
  [[nodiscard]] virtual Result<bool> GetPart(uint64_t chunk_index, size_t length, size_t offset,
                                             std::span<uint8_t> out) const;
  // Get, for a chunk another process may have stored since this store was
  // made (a store that remembers what it saw on disk looks again). The
  // default is Get.
  [[nodiscard]] virtual Result<bool> GetStoredByAnyone(uint64_t chunk_index, std::span<uint8_t> out) const {
    return Get(chunk_index, out);
  }
  // Bytes [offset, offset + out.size()) of chunk `chunk_index`, a full chunk
  // (chunk_size() bytes) another process may have stored: false = not
  // stored. A store that checked the chunk whole before may read only those
  // bytes. The default reads the chunk whole (GetStoredByAnyone) and copies.
  [[nodiscard]] virtual Result<bool> GetPartStoredByAnyone(uint64_t chunk_index, size_t offset,
                                                           std::span<uint8_t> out) const;
  // A claim to make one missing chunk (GetOrClaim); dropping it lets the
  // others waiting for that chunk look again.
  class MakeClaim {
   public:
    virtual ~MakeClaim() = default;
  };
  // For a chunk Get missed, before the caller makes it (decompresses it):
  // waits, bounded, while another process or thread makes the same chunk, and
  // copies the chunk into `out` (true) if it was stored meanwhile. false: the
  // caller makes the chunk, Puts it, and then drops *claim (set when the store
  // claimed the chunk for it, so that the others wait for that Put instead of
  // making the chunk too; null otherwise). The default: GetStoredByAnyone,
  // no claim.
  [[nodiscard]] virtual Result<bool> GetOrClaim(uint64_t chunk_index, std::span<uint8_t> out,
                                                std::unique_ptr<MakeClaim>* claim) const {
    claim->reset();
    return GetStoredByAnyone(chunk_index, out);
  }
  // Stores a copy of `data` (at most chunk_size() bytes) as chunk `chunk_index`.
  [[nodiscard]] virtual Status Put(uint64_t chunk_index, std::span<const uint8_t> data) const = 0;
  // Put for a chunk the caller already holds in a shared immutable buffer: a
  // store that keeps it for a while (in memory) may keep that
  // buffer instead of a copy. The default copies (Put).
  using SharedChunk = std::shared_ptr<const std::vector<uint8_t>>;
  [[nodiscard]] virtual Status PutShared(uint64_t chunk_index, SharedChunk data) const {
    return Put(chunk_index, *data);
  }
  // Whether chunk `chunk_index` is stored (a hint for prefetching: it may be
  // dropped right after). Cheaper than Get: no copy.
  virtual bool Contains(uint64_t chunk_index) const = 0;
};

// An unbounded in-memory store (tests, and when there is no cache directory).
// chunk_size 0 is replaced by 1 MiB.
std::shared_ptr<DecodedChunkStore> MakeMemoryDecodedStore(uint32_t chunk_size);

}  // namespace ocifs
