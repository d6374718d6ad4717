// GzipTargetPlacer: the extra checkpoints a first pass places around
// *targets*, ranges of the compressed blob a workload is known to read (an
// access profile's chunks, `oci-fs accelerate --profile`), so that a read
// there inflates, and fetches, little beyond its own bytes rather than a
// regular span of a megabyte or more:
//
//   * before each target range, and every `gap` compressed bytes inside it:
//     a checkpoint at the last restart point (deflate block boundary or
//     member start) whose output offset is at or before the start of the
//     checksum block (`align`, 64 KiB of output) holding the output just
//     before the target. A mount verifies whole blocks, so a read inflates
//     from a checkpoint at or before its block's start;
//   * after each target range: a checkpoint at the first restart point at
//     or after its end whose output offset is at or past the end of the
//     checksum block holding the target's last output (a read of those bytes
//     verifies that block whole), which ends the span such a read inflates
//     and fetches: the read does not spill into the (long) span after it.
//
// The indexer (GzipIndexer) reports every restart point it streams past, in
// order; the placer keeps the few recent ones a placement may pick (those
// since the last at or before a block start), with their windows, and says
// which checkpoints to record. A placed checkpoint may thus come after output
// past it was produced.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <utility>
#include <vector>

#include "decode/gzip_index.h"

namespace ocifs {

// Thread safety: none (the indexer's thread). Memory: the planned points (16
// bytes each) and the windows of the recent restart points (32 KiB each, a
// few: those within one block of output).
class GzipTargetPlacer {
 public:
  // A planned placement: a checkpoint before compressed offset `at` (after
  // == false), or at the first restart point at or after it (after == true).
  struct Point {
    uint64_t at = 0;
    bool after = false;
    bool operator==(const Point&) const = default;
  };
  struct Limits {
    uint64_t gap = 32 << 10;   // compressed bytes: closer ranges merge
    uint64_t spacing = 256 << 10;  // compressed bytes between the points inside a range (0: gap)
    size_t budget = 3584;      // checkpoints placed at most
    uint64_t max_window_bytes = 24ull << 20;  // their compressed windows, in all
    uint64_t align = 65536;    // output block size a read verifies (GzipIndex::kDefaultBlockSize)
  };

  // The points for `ranges` ([first, second) compressed offsets, any order,
  // overlaps allowed): ranges less than `gap` apart merge; each merged range
  // gets a point before its start and every `spacing` (0: `gap`) inside it,
  // and one after its end. If that is more than `budget`, gap and spacing
  // double until it fits.
  static std::vector<Point> Plan(std::vector<std::pair<uint64_t, uint64_t>> ranges, uint64_t gap, size_t budget,
                                 uint64_t spacing = 0);

  // `planned`: Plan's result.
  GzipTargetPlacer(std::vector<Point> planned, const Limits& limits);

  // Whether points remain (and the budget does); when false, nothing need be reported.
  bool active() const { return !exhausted_ && (next_ < points_.size() || after_); }
  size_t placed() const { return placed_; }
  uint64_t window_bytes() const { return window_bytes_; }

  // A checkpoint was recorded at `out`, `in` (a regular one, or one this
  // placer returned); a point less than `gap` after it needs no other.
  void Recorded(uint64_t out, uint64_t in);

  // A restart point `at` (out, in, bits, member_start; no window), in
  // increasing order, the first the layer's start {0, member start, 0}.
  // `window` is the output just before at.out (<= 32 KiB; empty for a member
  // start), which the indexer keeps in place until it calls Preserve. Returns
  // the checkpoints to record now, in increasing out, before any regular one
  // at `at`: an earlier restart point placed before a target, and `at` itself
  // after a target's end (each with its compressed window).
  std::vector<GzipCheckpoint> Restart(const GzipCheckpoint& at, std::span<const uint8_t> window);

  // The stream ended: a checkpoint for the targets after the last restart point, if any.
  std::vector<GzipCheckpoint> Finish();

  // The indexer is about to overwrite output it handed as windows: copy them.
  void Preserve();

 private:
  struct Recent {
    GzipCheckpoint at;  // no window yet
    std::span<const uint8_t> window;  // in the indexer's buffer, or in copy
    std::vector<uint8_t> copy;
  };
  // Places the recent restart point a target just passed needs, unless a
  // recorded checkpoint serves it or `out` already holds one.
  void PlaceBefore(uint64_t target, std::vector<GzipCheckpoint>& out);
  // Recent restart point `r` as a checkpoint to record, if it may be placed.
  bool Place(const Recent& r, std::vector<GzipCheckpoint>& out);
  // The recent restart point to place before compressed offset `target`,
  // which the newest one precedes: the last at or before the start of the
  // block holding the least output `target` can be at.
  const Recent& BeforeTarget(uint64_t target) const;

  const std::vector<Point> points_;  // sorted by at
  const Limits limits_;
  size_t next_ = 0;  // first point not passed yet
  size_t placed_ = 0;
  uint64_t window_bytes_ = 0;
  bool exhausted_ = false;  // the budget is spent: no more are placed
  bool recorded_ = false;   // a checkpoint was recorded (last_out_, last_in_)
  bool after_ = false;      // a target ended: the first restart point at or past after_out_ is placed
  uint64_t after_out_ = 0;
  uint64_t last_out_ = 0, last_in_ = 0;
  // Restart points from the last one at or before the newest's block start.
  std::deque<Recent> recent_;
};

}  // namespace ocifs
