// ZeroRanges: byte ranges of a decompressed stream known to hold only zeros
// (a raw disk's empty space), so reads of them need no decompression.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "ocifs/byte_source.h"

namespace ocifs {

// Ranges are kept merged (adjacent or overlapping ones become one), in a map
// by start. Thread safety: safe for concurrent use (one leaf mutex).
// Units: bytes of the decompressed stream.
class ZeroRanges {
 public:
  // Runs shorter than this inside a scanned buffer are not kept (a disk's
  // metadata is full of short ones); runs touching the buffer's edges are, so
  // a run split between two buffers is found whole.
  static constexpr uint64_t kMinRun = 64u << 10;
  // Scans `bytes`, which are the stream at `offset`, in 4 KiB blocks aligned
  // to the stream, and adds its runs of zeros.
  void AddFrom(uint64_t offset, std::span<const uint8_t> bytes);
  // Adds [from, to).
  void Add(uint64_t from, uint64_t to);
  // Whether all of [from, to) is known zeros (false for an empty range).
  bool Contains(uint64_t from, uint64_t to) const;
  // Sets to zero the bytes of `bytes` (the stream at `offset`) that lie in a
  // known range, so they are the same bytes a read of known zeros serves.
  void ZeroFill(uint64_t offset, std::span<uint8_t> bytes) const;
  // The known run holding `pos`, from pos to its end, as a hole; otherwise
  // data from pos to the start of the next known run (at most `limit`).
  Extent ExtentAt(uint64_t pos, uint64_t limit) const;
  // Every range, in order, as {start, end}.
  std::vector<std::pair<uint64_t, uint64_t>> Ranges() const;
  size_t range_count() const;

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, uint64_t> ranges_;  // start -> end; guarded by mu_
};

// Feeds a stream's bytes in order to a ZeroRanges, keeping runs of at least
// ZeroRanges::kMinRun that may span many calls. Not thread-safe (one producer).
class ZeroRunTracker {
 public:
  explicit ZeroRunTracker(ZeroRanges& ranges) : ranges_(ranges) {}
  // The next bytes of the stream, at `offset` (= the end of the previous call).
  void Feed(uint64_t offset, std::span<const uint8_t> bytes);
  // The stream ended at `offset`.
  void Finish(uint64_t offset);

 private:
  ZeroRanges& ranges_;
  bool in_run_ = false;
  uint64_t run_start_ = 0;
};

}  // namespace ocifs
