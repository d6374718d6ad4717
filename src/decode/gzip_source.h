// GzipSource: a gzip layer (one or more members) as a random-access
// ByteSource, via a checkpoint index (zlib's zran technique).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "decode/block_checksums.h"
#include "decode/decoder.h"
#include "decode/gzip_checkpoints.h"
#include "decode/gzip_first_pass.h"
#include "decode/gzip_saved_index.h"
#include "decode/gzip_tail_ahead.h"
#include "decode/pass_output_follower.h"
#include "decode/pass_progress.h"
#include "decode/shared_pass_progress.h"
#include "decode/segment_cache.h"
#include "decode/zero_ranges.h"
#include "ocifs/byte_source.h"
#include "sched/task_group.h"

namespace ocifs {

// How much of a checkpoint span a read inflates: all of it, or from its
// checkpoint up to the read's end.
enum class SpanLoad { kWhole, kToReadEnd };

// What the rule below knows about a span.
struct SpanFacts {
  uint64_t bytes = 0;          // its length: to the next checkpoint, or to the frontier
  bool closed = false;         // its end is final (a checkpoint follows, or the index is complete)
  uint64_t cache_bytes = 0;    // the segment cache's capacity
  bool zeros_unknown = false;  // its runs of zeros are still to be learnt (a version 1 index, Version1Zeros)
};

// The rule. A closed span is inflated whole, so the segment cache can serve
// the span's other reads: the next read nearby would otherwise inflate from
// the checkpoint again. A span still growing (the pass is producing it) has
// no end yet: only up to the read's end. A span larger than the cache would
// not be kept (a deflate block of zeros spans megabytes), so it too is
// inflated only up to the read's end, once its runs of zeros are known
// (reads of them are then zeros without inflating); until then (after a
// version 1 index was loaded) it is inflated whole once to learn them.
SpanLoad ChooseSpanLoad(const SpanFacts& span);

// Until the index is complete, a sequential pass (GzipFirstPass, a
// BackgroundPass on the mount's scheduler) inflates the layer, verifying CRCs
// and recording checkpoints; reads behind its frontier decompress from the
// nearest checkpoint (or copy from the span the pass is producing), reads
// ahead of it wait. A valid saved index makes the source random-access at
// once. size() is kUnknownSize until the index is complete.
//
// When the pass finds another process streaming the same layer into the same
// cache dir (DecoderOptions::pass_lease_path), it waits for that process's
// index; meanwhile a read behind what that process's pass has kept and
// published (DecoderOptions::pass_progress_path) is copied from its chunks
// at once (PassOutputFollower), and a read ahead of it waits for it to get
// there (polling every 1 to 5 ms), or for the index, or for this pass
// taking over (that process died): then as above. Once the index is adopted,
// a span is copied from those chunks too if they are still there, verified
// by the index's checksums (else inflated).
//
// Read cost: a read decompresses each checkpoint span it touches, from the
// span's checkpoint to the read's end or the span's end (ChooseSpanLoad),
// unless the span is in the segment cache or the bytes are known zeros, or
// this source's pass kept them (PassOutputKeeper: a copy of the read's own
// bytes, the span is not loaded). The
// spans of one read inflate in parallel on the scheduler's decode pool (the
// caller takes part). A read takes the checkpoint table's lock once, and no
// lock for the progress once the index is complete.
// After the pass fails (kCorrupt), every read returns that error; once it is
// cancelled (the scheduler stops), reads it has not reached return kCancelled.
//
// A loaded index with block checksums (version 3) may be wrong (one from a
// registry, or built for another blob of the same size and tail), so its
// reads are verified: every inflate from a checkpoint checks the blocks it
// produced whole that are not verified yet (BlockChecksums: once right, a
// block is not checked again), and a read widens to the bounds of its edge
// blocks that are not verified yet, so it returns bytes of verified blocks
// only. Known zeros are served as zeros whichever way a block is read (an
// inflated span is zero-filled there), so a block's bytes are the same each
// time. A mismatch is kDataLoss ("gzip index of <blob> is wrong: block N at
// decompressed offset M does not match its checksum"), nothing is cached, and
// the caller (IndexFallbackSource) stops using the index. Zero runs are learnt
// (Version1Zeros) only from verified blocks, so a hole is never reported for
// bytes that were not checked. A loaded index without checksums is trusted.
//
// Locks: the checkpoint table's (GzipCheckpoints), the progress's
// (PassProgress), the open span's (GzipFirstPass), the zero ranges' and the
// segment cache's are all leaf locks: none is held while another is taken,
// nor while inflating or reading.
// Thread safety: all methods safe for concurrent use. The destructor cancels
// the pass and waits for it (at most one compressed range read later).
// Ownership: shares `compressed`.
class GzipSource final : public ByteSource {
 public:
  // What Open does with the index saved at options.index_path.
  enum class SavedIndex {
    kLoad,     // use it if it was built for this blob
    kRebuild,  // ignore it: the first pass rebuilds it and saves over it
  };
  // The one way to make one: loads the index saved at options.index_path if
  // it was built for this blob (and `saved` is kLoad), else opens
  // options.gzip_index_blob's (its table now, its windows on use); otherwise starts the
  // first pass (at once if options.background_pass, else when a read needs it).
  [[nodiscard]] static Result<std::shared_ptr<GzipSource>> Open(ByteSourcePtr compressed,
                                                                const DecoderOptions& options,
                                                                SavedIndex saved = SavedIndex::kLoad);
  ~GzipSource() override = default;

  uint64_t size() const override { return progress_.size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  // Once the index is complete: forwards the compressed range of the
  // checkpoint spans [offset, offset + length) overlaps. Before: nothing
  // (the pass reads the layer in order anyway).
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override { return "gzip(" + compressed_->Describe() + ")"; }
  // kStream while a pass builds the index (a read ahead of it waits); kRandom with a loaded index.
  Access access() const override { return pass_ ? Access::kStream : Access::kRandom; }
  // Runs of zeros known so far (>= 64 KiB, found by the pass or kept in the
  // index) are holes; the rest is data. A hole is reported only where the
  // bytes are known zeros: zeros not (yet) known are reported as data.
  Result<Extent> ExtentAt(uint64_t offset) const override;

  // While the pass runs: decodes the layer's end ahead of it in the
  // background (GzipTailAhead, once, for blobs of GzipTailAhead::kMinBlobBytes);
  // reads the pass has not reached that lie in the tail's exact bytes are
  // served from it at once.
  void HintLastEntryEnd(uint64_t data_end) const override;
  // With the layer's size known (its tail decoded) and at most
  // kNearlyDoneBytes left to produce, or the output complete and the index
  // being saved: waits for the pass to end, at most `budget`.
  void FinishNearlyDone(std::chrono::milliseconds budget) const override;
  static constexpr uint64_t kNearlyDoneBytes = 64ull << 20;
  // Blocks until the index is complete (and saved, if options.index_path is
  // set) or the pass failed; returns the pass's status.
  [[nodiscard]] Status WaitUntilIndexed() const override { return progress_.WaitUntilFinished(); }
  // True if the index was loaded from options.index_path or gzip_index_blob (no pass ran).
  bool loaded_from_file() const { return !pass_; }
  // True if reads are verified against the loaded index's block checksums.
  bool verifies_reads() const { return checks_ != nullptr; }
  size_t checkpoint_count() const { return checkpoints_.count(); }

 private:
  // The part [from, to) of a read that lies in one checkpoint span.
  struct Piece {
    GzipCheckpoints::Span span;
    uint64_t from = 0, to = 0;
    size_t need = 0;  // decompressed bytes from the checkpoint up to `to`
    SpanLoad load = SpanLoad::kToReadEnd;
  };

  // may_adopt: the pass may adopt an index another process saves meanwhile
  // (DecoderOptions::pass_lease_path).
  GzipSource(ByteSourcePtr compressed, const DecoderOptions& options, std::optional<GzipIndex> index,
             bool may_adopt);
  // Makes `index` this source's: its checkpoints, zero runs and checksums
  // (reads then verified). The constructor's, or the pass's before any
  // output while every reader waits on the progress (which orders these
  // writes before their reads of checks_ and the rest).
  void InstallIndex(GzipIndex index);
  // The pass's Target::adopt_saved_index: the index saved at
  // options_.index_path, if valid for this blob and with checksums, installed.
  std::optional<uint64_t> AdoptSavedIndex();
  // Bytes [from, to) (produced) into `out` (to - from bytes), span by span.
  // `asked`: the part of them the reader asked for (a verified read widens to
  // whole blocks), which alone is recorded (options_.record_compressed);
  // {0, 0}: all of them.
  [[nodiscard]] Status ReadSpans(uint64_t from, uint64_t to, const PassProgress::Produced& produced,
                                 std::span<uint8_t> out, std::pair<uint64_t, uint64_t> asked = {0, 0}) const;
  // With checks_: bytes [from, to) into `out`, every block they touch verified.
  [[nodiscard]] Status ReadVerified(uint64_t from, uint64_t to, const PassProgress::Produced& produced,
                                    std::span<uint8_t> out) const;
  // The inflated bytes of span p (at decompressed offset p.span.out), checked:
  // zero-filled where zeros are known, its whole blocks verified, its zero
  // runs learnt (a version 1 index: from verified blocks only).
  [[nodiscard]] Status CheckInflated(const Piece& p, std::vector<uint8_t>& bytes) const;
  Piece MakePiece(const GzipCheckpoints::Span& span, uint64_t from, uint64_t to, bool complete) const;
  // With options_.record_compressed: reports the compressed bytes that made
  // each piece's output within [asked.first, asked.second), or all of a
  // piece's outside it (its span's input marks, else the whole span's).
  void RecordNeeded(const std::vector<Piece>& pieces, std::pair<uint64_t, uint64_t> asked) const;
  // Serves p into `out` without inflating if it can: known zeros, or the span
  // the pass is producing.
  bool ServeWithoutInflating(const Piece& p, bool complete, std::span<uint8_t> out) const;
  // While the pass follows another process's pass: buf served from what that
  // pass published, waiting for it as long as it is followed; nullopt when
  // it is no longer followed (or never was), or a chunk is missing: read as
  // a reader of this pass then.
  std::optional<size_t> ReadBehindOtherPass(uint64_t offset, std::span<uint8_t> buf) const;
  // The decompressed span of p (at least p.need bytes), from the segment
  // cache, else copied from what the pass kept (keeper_) or, with an index
  // adopted, what the other process's pass published (follower_), else inflated.
  [[nodiscard]] Result<SegmentCache::Buffer> Segment(const Piece& p) const;

  const ByteSourcePtr compressed_;
  const DecoderOptions options_;  // checkpoint_spacing bounded by max_checkpoints
  const std::shared_ptr<Scheduler> scheduler_;  // its decode pool inflates the spans of a read
  mutable SegmentCache cache_;
  GzipCheckpoints checkpoints_;
  PassProgress progress_;
  // Runs of zeros in the output (a raw disk's empty space), found by the
  // pass, kept in the index or learnt (v1_zeros_): reads of them are zeros
  // without inflating (a deflate block of zeros spans megabytes, more than
  // the segment cache holds).
  mutable ZeroRanges zeros_;
  mutable Version1Zeros v1_zeros_{zeros_};
  // The loaded (or adopted) index's block checksums (version 3); null
  // otherwise. Set before the progress completes, read only after it has.
  std::unique_ptr<const BlockChecksums> checks_;
  // The pass's output in options.decoded_store's chunks, for reads behind its
  // frontier; null when the index was loaded, or without a store or
  // options.keep_pass_output.
  std::unique_ptr<PassOutputKeeper> keeper_;
  // The layer's shared pass progress (published by keeper_ when this pass
  // streams; followed by follower_ while another process's pass streams);
  // null without options.pass_progress_path, a keeper or a pass lease.
  std::unique_ptr<SharedPassProgress> shared_;
  std::unique_ptr<PassOutputFollower> follower_;
  // With options_.record_compressed: each inflated span's input marks
  // (InflateFromCheckpoint), by checkpoint; a leaf lock, never held while
  // inflating. Memory: 8 bytes per 64 KiB of output inflated.
  mutable std::mutex marks_mu_;
  mutable std::unordered_map<size_t, std::vector<uint64_t>> marks_;  // guarded by marks_mu_
  // Null when the index was loaded. Last: cancelled and waited for first (it fills the members above).
  std::unique_ptr<GzipFirstPass> pass_;
  // The layer's end, decoded ahead of the pass (HintLastEntryEnd). Null when
  // the index was loaded. Last: destroyed first (its task is cancelled and waited for).
  std::unique_ptr<GzipTailAhead> tail_ahead_;
};

}  // namespace ocifs
