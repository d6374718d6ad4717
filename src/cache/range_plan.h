// RangePlan: the range requests a profile's prefetch makes. A profile names
// small pieces of a blob (64 KiB units, docs/profile-format.md) in the order
// a workload first read them; fetching each piece with its own request costs
// a round trip apiece, and fetching the cache chunks that hold them (1 MiB)
// fetches four times the bytes. The plan fetches the pieces themselves,
// coalesced into few requests:
//   - the order is kept window by window: the next `window` pieces of the
//     order are sorted and coalesced among themselves, and windows follow
//     the profile's order, so what the workload reads first comes first;
//   - pieces at most `gap` pieces apart join one run (the gap's bytes are
//     fetched too: a short gap costs less than another request's round trip);
//   - a run is at most `max_run` pieces (a reader that needs a run waits for
//     all of it).
// Pure functions; thread-safe.
// Units: piece indexes (piece i covers blob bytes [i * piece_size, +piece_size)).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace ocifs {

struct RangePlanOptions {
  uint64_t gap = 2;        // pieces; a run absorbs gaps of at most this many
  uint64_t max_run = 8;    // pieces per run (>= 1)
  uint64_t window = 64;    // pieces of the order sorted together (>= 1)
};

struct PieceRun {
  uint64_t first = 0;  // first piece
  uint64_t count = 0;  // pieces, >= 1
  bool operator==(const PieceRun&) const = default;
};

// The runs that fetch `pieces` (each below `piece_count`; repeats and pieces
// at or past piece_count are dropped), in fetch order. Every listed piece is
// in exactly one run; runs do not overlap; a run's pieces are all below
// piece_count.
std::vector<PieceRun> PlanPieceRuns(std::span<const uint64_t> pieces, uint64_t piece_count,
                                    const RangePlanOptions& options = {});

}  // namespace ocifs
