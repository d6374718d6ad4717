// SequentialReader: reads a ByteSource front to back in large pieces, for the
// decoders' sequential passes (over HTTP every miss is a round trip, so the
// compressed source is read in MiB-sized ranges, never byte by byte).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ocifs/byte_source.h"

namespace ocifs {

// Thread safety: none; one reader belongs to one thread. Borrows `source`,
// which must outlive the reader.
class SequentialReader {
 public:
  static constexpr size_t kDefaultPiece = 4u << 20;

  // Starts at byte `start`; each refill reads up to `piece` bytes (>= 64).
  SequentialReader(const ByteSource& source, uint64_t start, size_t piece = kDefaultPiece);

  // Offset in the source of the next unconsumed byte.
  uint64_t position() const { return position_; }

  // The unconsumed buffered bytes, refilling first if none are buffered.
  // Empty = end of the source.
  [[nodiscard]] Result<std::span<const uint8_t>> Next();

  // At least min(n, bytes left in the source) unconsumed bytes (n <= piece).
  [[nodiscard]] Result<std::span<const uint8_t>> Peek(size_t n);

  // Marks n bytes as consumed; n may go past the buffer (the skipped bytes are
  // never read) and past the end of the source (check position() after).
  void Skip(uint64_t n);

 private:
  [[nodiscard]] Status Fill(size_t min_bytes);

  const ByteSource& source_;
  size_t piece_;
  uint64_t position_;
  std::vector<uint8_t> buf_;
  size_t begin_ = 0;  // buf_[begin_, end_) are the bytes at position_
  size_t end_ = 0;
  bool eof_ = false;
};

}  // namespace ocifs
