// GzipSource: a gzip layer (one or more members) as a random-access
// ByteSource, via a checkpoint index (zlib's zran technique).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "decode/background_pass.h"
#include "decode/decoder.h"
#include "decode/gzip_index.h"
#include "decode/segment_cache.h"
#include "decode/zero_ranges.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// Until the index is complete, a sequential pass (GzipIndexer, a
// BackgroundPass on the mount's scheduler) inflates the layer, verifying CRCs and recording
// checkpoints; reads behind its frontier decompress from the nearest
// checkpoint, reads ahead of it wait. A valid saved index makes the source
// random-access at once. size() is kUnknownSize until the index is complete.
//
// Read cost: a read decompresses each checkpoint span it touches, from the
// span's checkpoint to the read's end or the span's end (spacing + at most one
// deflate block), unless the span is in the segment cache. The spans of one
// read inflate in parallel on the scheduler's decode pool (the caller takes part).
// After the pass fails (kCorrupt), every read returns that error; once it is
// cancelled (the scheduler stops), reads it has not reached return kCancelled.
// Thread safety: all methods safe for concurrent use. The destructor cancels
// the pass and waits for it (at most one compressed range read later).
// Ownership: shares `compressed`.
class GzipSource final : public ByteSource {
 public:
  [[nodiscard]] static Result<std::shared_ptr<GzipSource>> Open(ByteSourcePtr compressed,
                                                                const DecoderOptions& options);
  GzipSource(ByteSourcePtr compressed, const DecoderOptions& options);
  ~GzipSource() override;

  uint64_t size() const override { return size_.load(std::memory_order_acquire); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  // Once the index is complete: forwards the compressed range of the
  // checkpoint spans [offset, offset + length) overlaps. Before: nothing
  // (the pass reads the layer in order anyway).
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override { return "gzip(" + compressed_->Describe() + ")"; }
  // Runs of zeros known so far (>= 64 KiB, found by the pass or kept in the
  // index) are holes; the rest is data. A hole is reported only where the
  // bytes are known zeros: zeros not (yet) known are reported as data.
  Result<Extent> ExtentAt(uint64_t offset) const override;

  // Blocks until the index is complete (and saved, if options.index_path is
  // set) or the pass failed; returns the pass's status.
  [[nodiscard]] Status WaitUntilIndexed() const;
  // True if the index was loaded from options.index_path (no pass ran).
  bool loaded_from_file() const { return loaded_from_file_; }
  size_t checkpoint_count() const;

 private:
  // The part [from, to) of a read that lies in checkpoint span `index`.
  struct Piece {
    size_t index = 0;
    uint64_t out = 0;  // where its span starts (its checkpoint's out)
    uint64_t from = 0, to = 0;
    size_t need = 0;  // decompressed bytes from the checkpoint up to `to`
    size_t load = 0;  // bytes to inflate: the whole span once it is closed (see PieceAtLocked)
    bool whole = false;  // load is the whole span
    uint64_t compressed_hint = 0;
  };
  Piece PieceAtLocked(uint64_t pos, uint64_t end) const;
  bool TryLoadIndex();
  void RunPass() const;
  // The pass's cancel hook: readers waiting for what it will not produce fail.
  void OnPassCancelled() const;
  void FinishPass(Result<uint64_t> result) const;
  // The decompressed span of p (at least p.need bytes), from the segment cache or inflated.
  [[nodiscard]] Result<SegmentCache::Buffer> Segment(const Piece& p) const;
  // Whether span `index` was inflated whole since the index was loaded (its zeros are known). Needs mu_.
  bool SpanScannedLocked(size_t index) const;

  const ByteSourcePtr compressed_;
  const DecoderOptions options_;
  bool loaded_from_file_ = false;
  mutable std::atomic<uint64_t> size_{kUnknownSize};
  mutable SegmentCache cache_;

  mutable std::mutex mu_;  // guards the fields below; never held while inflating or reading
  mutable std::condition_variable cv_;
  mutable std::vector<GzipCheckpoint> checkpoints_;  // append-only, sorted by out
  mutable uint64_t frontier_ = 0;                    // decompressed bytes the pass has produced
  mutable bool complete_ = false;                    // checkpoints_ cover the whole layer
  mutable Status failure_;                           // the pass's error, if it failed
  mutable bool pass_finished_ = false;               // RunPass has returned (index saved)
  // The span the pass is producing (from checkpoints_[open_span_index_].out to
  // frontier_), while it fits the segment cache; readers copy from it.
  mutable std::vector<uint8_t> open_span_;
  mutable size_t open_span_index_ = 0;
  mutable bool open_span_valid_ = false;
  // Runs of zeros in the output (a raw disk's empty space), found by the
  // pass, or by inflating whole spans after an index was loaded: reads of
  // them are zeros without inflating (a deflate block of zeros spans
  // megabytes, more than the segment cache holds).
  mutable ZeroRanges zeros_;
  // zeros_ holds every run of the layer (the pass finished, or a version 2
  // index was loaded): no span need be inflated whole to learn them.
  mutable std::atomic<bool> zeros_complete_{false};
  mutable std::vector<bool> scanned_spans_;  // guarded by mu_; see SpanScannedLocked
  mutable BackgroundPass pass_;  // last: cancelled and waited for first (RunPass uses the members above)
};

}  // namespace ocifs
