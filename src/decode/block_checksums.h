// Checksums of a decompressed stream in fixed blocks (a gzip index's, version
// 3: docs/gzip-index-format.md): BlockCrcBuilder computes them while a stream
// goes by (the first pass); BlockChecksums checks bytes against them and
// remembers which blocks were found right (reads from an index that may be
// wrong: one from a registry, or for another blob).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

// The CRC-32 (zlib crc32) of each `block_size` bytes of a stream fed in
// order, in pieces of any size; the last block may be short.
// Thread safety: none (one producer). Units: bytes.
class BlockCrcBuilder {
 public:
  explicit BlockCrcBuilder(uint32_t block_size);
  // The next bytes of the stream (contiguous with the previous ones).
  void Feed(std::span<const uint8_t> bytes);
  // The stream ended: the checksums, ceil(bytes fed / block_size) of them.
  std::vector<uint32_t> Finish();
  uint32_t block_size() const { return block_size_; }

 private:
  const uint32_t block_size_;
  std::vector<uint32_t> crcs_;
  uint32_t crc_ = 0;       // of the current block so far
  uint32_t in_block_ = 0;  // bytes of the current block fed so far
};

// The block checksums of a stream of `size` bytes, and an atomic bitmap of
// the blocks already verified. Verifying is by the bytes a caller serves: a
// block once found right is never checked again, so the caller must serve
// the same bytes for it every time (a deterministic inflate from the same
// checkpoint).
// Thread safety: safe for concurrent use; no lock (one atomic word per 64
// blocks; a block verified by two threads at once is checked twice, harmlessly).
// Units: bytes of the decompressed stream; block numbers from 0.
class BlockChecksums {
 public:
  // crcs.size() must be ceil(size / block_size) (GzipIndex::Parse ensures it).
  // `what` names the blob in errors ("gzip index of <what> is wrong: ...").
  BlockChecksums(uint32_t block_size, std::vector<uint32_t> crcs, uint64_t size, std::string what);
  BlockChecksums(const BlockChecksums&) = delete;
  BlockChecksums& operator=(const BlockChecksums&) = delete;

  uint32_t block_size() const { return block_size_; }
  bool Verified(uint64_t block) const {
    return block < crcs_.size() &&
           (bits_[block / 64].load(std::memory_order_acquire) >> (block % 64) & 1) != 0;
  }
  // [from, to) (within the stream), widened to the start of its first block
  // and the end of its last (or the stream's end) where those blocks are not
  // verified yet: the bytes a read must have to check every block it returns.
  std::pair<uint64_t, uint64_t> Widen(uint64_t from, uint64_t to) const;
  // Called with each block Check finds right: its offset and its bytes.
  using OnVerified = std::function<void(uint64_t offset, std::span<const uint8_t> block)>;
  // `bytes` are the stream at `offset`. Checks each block that lies wholly in
  // them and is not verified yet, and marks it verified (after calling
  // `on_verified`, if set). kDataLoss on the first that does not match ("gzip
  // index of <what> is wrong: block 17 at decompressed offset 1114112 does
  // not match its checksum").
  [[nodiscard]] Status Check(uint64_t offset, std::span<const uint8_t> bytes,
                             const OnVerified& on_verified = {}) const;
  // The part of [from, to) made of whole blocks (the last block may end at
  // the stream's end): where bytes may be taken as checked once Check passed
  // over [from, to). Empty (first == second) if there is none.
  std::pair<uint64_t, uint64_t> WholeBlocks(uint64_t from, uint64_t to) const;

 private:
  uint64_t BlockEnd(uint64_t block) const;

  const uint32_t block_size_;
  const std::vector<uint32_t> crcs_;
  const uint64_t size_;
  const std::string what_;
  std::unique_ptr<std::atomic<uint64_t>[]> bits_;  // bit b: block b verified
};

}  // namespace ocifs
