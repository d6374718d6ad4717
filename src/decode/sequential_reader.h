// SequentialReader: reads a ByteSource front to back in large pieces, for the
// decoders' sequential passes (over HTTP every miss is a round trip, so the
// compressed source is read in MiB-sized ranges, never byte by byte).
//
// With `ahead` > 0 it also keeps the source told (ByteSource::Prefetch) about
// the next `ahead` bytes past what it has read, so a cached blob fetches them
// with several range requests in flight while the caller decodes what
// arrived: a first pass then streams at link rate, not one round trip and one
// piece at a time. The first hint goes out just before the first read (at
// most kFirstRead) for the bytes after it, so they stream beside it; later
// ones after each read, in steps of at least a quarter window, each for the
// bytes not hinted yet.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ocifs/byte_source.h"

namespace ocifs {

// Thread safety: none; one reader belongs to one thread. Borrows `source`,
// which must outlive the reader.
class SequentialReader {
 public:
  static constexpr size_t kDefaultPiece = 4u << 20;
  // With `ahead`, the first read's size at most: the read-ahead hint follows
  // it, so the link idles no longer than one round trip at the start.
  static constexpr size_t kFirstRead = 1u << 20;

  // Starts at byte `start`; each refill reads up to `piece` bytes (>= 64).
  // ahead: bytes to hint ahead of the reads (0: none).
  SequentialReader(const ByteSource& source, uint64_t start, size_t piece = kDefaultPiece, uint64_t ahead = 0);

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

  // Time spent in the source's ReadAt (waiting for bytes), and bytes read: a
  // pass's log says whether it waited for the network or decoded.
  std::chrono::steady_clock::duration read_time() const { return read_time_; }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  // Hints the source about [position_ + end_ + reading, + ahead_), less what
  // was hinted; `reading`: bytes a read about to start asks for.
  void HintAhead(size_t reading = 0);

  [[nodiscard]] Status Fill(size_t min_bytes);

  const ByteSource& source_;
  size_t piece_;
  uint64_t position_;
  std::vector<uint8_t> buf_;
  size_t begin_ = 0;  // buf_[begin_, end_) are the bytes at position_
  size_t end_ = 0;
  bool eof_ = false;
  const uint64_t ahead_;
  uint64_t hinted_ = 0;  // bytes before this were hinted (or read)
  std::chrono::steady_clock::duration read_time_{};
  uint64_t bytes_read_ = 0;
};

// Logs (info) what a pass named `name` that began at `started` read through
// `reader`: the compressed MiB, the seconds, and how many of them it waited
// in the source's ReadAt (the rest it decoded).
void LogStreamPass(const std::string& name, uint64_t bytes, std::chrono::steady_clock::duration read_time,
                   std::chrono::steady_clock::time_point started);

}  // namespace ocifs
