// GzipCheckpoints: the checkpoint table of one gzip layer, which the first
// pass fills (or a saved index gives whole) and reads look up. A checkpoint
// span is the output from one checkpoint to the next (the last one: to the
// pass's frontier, or the layer's end).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "decode/gzip_index.h"
#include "ocifs/status.h"

namespace ocifs {

// Append-only, sorted by out; the first checkpoint is {out 0, member start}.
// Thread safety: safe for concurrent use. mu_ is a leaf lock, never held while
// inflating or reading; ForEachSpan's callback runs under it and must take no
// other lock but leaf ones. Units: out is decompressed bytes, in compressed bytes.
class GzipCheckpoints {
 public:
  // One checkpoint span as a read sees it.
  struct Span {
    size_t index = 0;      // its checkpoint
    uint64_t out = 0;      // where it starts (its checkpoint's out)
    uint64_t end = 0;      // the next checkpoint's out, or the frontier given to ForEachSpan
    bool has_next = false;  // a checkpoint follows: end is final
    uint64_t compressed_hint = 0;  // compressed bytes from its checkpoint past the next one's; 0: unknown
  };

  GzipCheckpoints() = default;
  GzipCheckpoints(const GzipCheckpoints&) = delete;
  GzipCheckpoints& operator=(const GzipCheckpoints&) = delete;

  // The checkpoints of a loaded index, before any other use.
  void Reset(std::vector<GzipCheckpoint> checkpoints);
  // Keeps the windows of checkpoints appended from now on in an unlinked
  // file in `dir` (O_TMPFILE), each region under a CRC-32, instead of in
  // memory: a first pass's table then costs a few dozen bytes per checkpoint,
  // not its compressed window (up to 32 KiB each; the bench's 700 MiB qcow2
  // layer: 7 MiB). Call before any Append, from the thread that appends.
  // False (windows stay in memory) if the file cannot be made there; a
  // window whose write fails stays in memory too.
  bool SpillWindowsTo(const std::string& dir);
  // The pass's next checkpoint, after the output before it was produced.
  // Returns its index.
  size_t Append(GzipCheckpoint checkpoint);
  size_t count() const;
  // A copy of checkpoint `index` (< count()), to inflate from.
  GzipCheckpoint At(size_t index) const;

  // Calls fn(Span) for each span overlapping [from, to), in order, under the
  // table's lock. `frontier` (>= to) ends the last span: the bytes produced so far.
  template <class Fn>
  void ForEachSpan(uint64_t from, uint64_t to, uint64_t frontier, Fn&& fn) const;

  // The compressed bytes [first, second) that hold the spans overlapping
  // [from, to) (to > from); `compressed_size` ends the last span.
  std::pair<uint64_t, uint64_t> CompressedRange(uint64_t from, uint64_t to, uint64_t compressed_size) const;

  // Saves `index` (its header fields; no checkpoints) with these checkpoints
  // to `path`, then points them at their windows in the file and frees the
  // copies in memory and the spill file (its space goes with the last copy of
  // a checkpoint taken before). Only once the table is complete, from the
  // thread that appended: no Append may follow.
  [[nodiscard]] Status SaveComplete(const GzipIndex& index, const std::string& path);

 private:
  size_t IndexOfLocked(uint64_t pos) const;
  Span SpanLocked(size_t index, uint64_t frontier) const;

  // Moves cp's window (and block header) into the spill file.
  void Spill(GzipCheckpoint& cp);

  mutable std::mutex mu_;
  std::vector<GzipCheckpoint> list_;  // guarded by mu_
  // The spill file (SpillWindowsTo): written and grown by the appending thread only.
  UniqueFd spill_fd_;
  std::shared_ptr<const GzipWindowFile> spill_file_;  // the checkpoints' view of it (its own fd)
  uint64_t spill_end_ = 0;
};

template <class Fn>
void GzipCheckpoints::ForEachSpan(uint64_t from, uint64_t to, uint64_t frontier, Fn&& fn) const {
  std::lock_guard lock(mu_);
  if (from >= to || list_.empty()) return;
  for (size_t i = IndexOfLocked(from); i < list_.size() && list_[i].out < to; ++i) fn(SpanLocked(i, frontier));
}

}  // namespace ocifs
