// GzipTail: the end of a gzip layer, decompressed before its first pass gets
// there. A boot reads the end of its disk early (the GPT's backup header; a
// qcow2's last L2 tables and the clusters qemu-img wrote last); on a first
// mount without an index such a read waited for the whole layer to stream,
// and every read after it too. The tail is found without the bytes before it:
//
//  - the last bytes of the blob are read (one range request);
//  - a deflate block boundary in them: the byte after a stored block (byte
//    aligned; LEN and NLEN = ~LEN) from which a raw inflate ends its final
//    block exactly where the gzip trailer (8 bytes) starts, at the blob's end;
//  - inflated from there twice, in step, with two 32 KiB windows that differ
//    in every byte (zlib's inflateSetDictionary): an output byte that is the
//    same in both depends on no byte before the boundary, and is exact; the
//    others are unknown and never served;
//  - placed: the trailer's ISIZE is the layer's size mod 2^32, and the tar
//    above says where its last entry's data ends (`data_end`, a multiple of
//    512): the archive ends with its end-of-archive blocks, 1024 to 11264
//    bytes later (a 10240-byte record at most), so one size fits; the tail
//    must reach back to data_end, and its bytes from there to the end must be
//    exact zeros. Anything else (another layout, a multi-member gzip, no
//    stored block) gives no tail: the reads wait for the pass as before.
//
// Immutable once built: safe for concurrent use.
// Units: decompressed layer offsets in bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ocifs/byte_source.h"
#include "ocifs/status.h"

namespace ocifs {

class GzipTail {
 public:
  // Compressed bytes read from the blob's end (at most): a boot's early reads
  // of its disk's end need its last few hundred KiB (bench: 0.2% of the layer).
  static constexpr uint64_t kFetchBytes = 4ull << 20;
  // Decompressed bytes kept at most; a tail that inflates to more (runs of
  // zeros) is tried from a later boundary.
  static constexpr uint64_t kMaxOutput = 32ull << 20;
  // The archive's end after its last entry's data: two zero blocks, then
  // zeros up to a record (tar's default 10240 bytes) at most.
  static constexpr uint64_t kMinTarEnd = 1024;
  static constexpr uint64_t kMaxTarEnd = 1024 + 10240;

  // The tail of `compressed` (a whole gzip blob of known size) whose
  // decompressed tar has its last entry's data ending at `data_end`.
  // kNotFound (with why) when it cannot be placed; I/O errors as the blob's.
  [[nodiscard]] static Result<std::shared_ptr<const GzipTail>> Decode(const ByteSource& compressed, uint64_t data_end,
                                                                     uint64_t fetch_bytes = kFetchBytes);
  // The same, from `tail`: the blob's last bytes, the blob being
  // `blob_size` bytes long (tests).
  [[nodiscard]] static Result<std::shared_ptr<const GzipTail>> DecodeBytes(std::span<const uint8_t> tail,
                                                                          uint64_t blob_size, uint64_t data_end);

  // Decompressed offsets: [start(), total()) is decoded; total() is the layer's size.
  uint64_t start() const { return start_; }
  uint64_t total() const { return start_ + bytes_.size(); }
  // Bytes of the tail that are not known (they depend on bytes before the boundary).
  uint64_t unknown_bytes() const;
  // Copies [offset, offset + out.size()) into out if all of it is in the
  // tail and exact; false otherwise (nothing copied).
  bool Copy(uint64_t offset, std::span<uint8_t> out) const;

  // The decoded bytes, in blocks of kBlock bytes (the last one shorter): no
  // vector that doubles its capacity while it grows.
  static constexpr size_t kBlock = 256u << 10;
  class Bytes {
   public:
    uint64_t size() const { return size_; }
    void Append(std::span<const uint8_t> data);
    uint8_t At(uint64_t at) const { return blocks_[at / kBlock][at % kBlock]; }
    void CopyOut(uint64_t at, std::span<uint8_t> out) const;

   private:
    std::vector<std::vector<uint8_t>> blocks_;
    uint64_t size_ = 0;
  };

  GzipTail(uint64_t start, Bytes bytes, std::vector<std::pair<uint64_t, uint64_t>> unknown)
      : start_(start), bytes_(std::move(bytes)), unknown_(std::move(unknown)) {}

 private:
  uint64_t start_;
  Bytes bytes_;
  // [from, to) offsets in bytes_ that are unknown; sorted, disjoint.
  std::vector<std::pair<uint64_t, uint64_t>> unknown_;
};

}  // namespace ocifs
