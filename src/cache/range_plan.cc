#include "cache/range_plan.h"

#include <algorithm>
#include <cstdint>

#include <tsl/robin_set.h>

namespace ocifs {
namespace {

// The pieces already in a run: a bitmap over the listed pieces' span (every
// planned piece lies between two listed ones), or a hash set when that span
// is too wide for one (a blob of hundreds of GiB, or a hostile profile).
class PlannedPieces {
 public:
  PlannedPieces(uint64_t lo, uint64_t hi) : lo_(lo) {
    if (hi >= lo && hi - lo < kMaxBitmapBits) bits_.assign(static_cast<size_t>((hi - lo) / 64 + 1), 0);
  }
  bool contains(uint64_t p) const {
    if (bits_.empty()) return set_.contains(p);
    const uint64_t i = p - lo_;
    return p >= lo_ && i / 64 < bits_.size() && (bits_[i / 64] >> (i % 64) & 1) != 0;
  }
  // Marks [begin, end), which lies within the span.
  void insert(uint64_t begin, uint64_t end) {
    for (uint64_t p = begin; p < end; ++p) {
      if (bits_.empty()) {
        set_.insert(p);
      } else {
        bits_[(p - lo_) / 64] |= uint64_t{1} << ((p - lo_) % 64);
      }
    }
  }
  // Whether a piece of [begin, end) is marked (a gap may not reach into an earlier run).
  bool any(uint64_t begin, uint64_t end) const {
    for (uint64_t p = begin; p < end; ++p) {
      if (!bits_.empty() && (p - lo_) % 64 == 0 && end - p >= 64) {
        if (bits_[(p - lo_) / 64] != 0) return true;
        p += 63;
        continue;
      }
      if (contains(p)) return true;
    }
    return false;
  }

 private:
  static constexpr uint64_t kMaxBitmapBits = uint64_t{1} << 24;  // 2 MiB of bitmap at most
  uint64_t lo_;
  std::vector<uint64_t> bits_;
  tsl::robin_set<uint64_t> set_;
};

}  // namespace

std::vector<PieceRun> PlanPieceRuns(std::span<const uint64_t> pieces, uint64_t piece_count,
                                    const RangePlanOptions& options) {
  const uint64_t max_run = std::max<uint64_t>(1, options.max_run);
  const size_t window = static_cast<size_t>(std::max<uint64_t>(1, options.window));
  std::vector<PieceRun> runs;
  uint64_t lo = UINT64_MAX, hi = 0;
  for (uint64_t p : pieces) {
    if (p >= piece_count) continue;
    lo = std::min(lo, p);
    hi = std::max(hi, p);
  }
  // Pieces already in a run (listed earlier, or a gap an earlier run filled).
  PlannedPieces planned(lo, hi);
  std::vector<uint64_t> batch;
  size_t next = 0;
  while (next < pieces.size()) {
    batch.clear();
    for (; next < pieces.size() && batch.size() < window; ++next) {
      const uint64_t p = pieces[next];
      if (p < piece_count && !planned.contains(p)) batch.push_back(p);
    }
    std::sort(batch.begin(), batch.end());
    batch.erase(std::unique(batch.begin(), batch.end()), batch.end());
    size_t i = 0;
    while (i < batch.size()) {
      // A run from batch[i]: later pieces of the batch join while the gap
      // before them is short and the run stays within max_run.
      const uint64_t first = batch[i];
      uint64_t end = first + 1;
      size_t j = i + 1;
      while (j < batch.size() && batch[j] - end <= options.gap && batch[j] + 1 - first <= max_run &&
             !planned.any(end, batch[j])) {
        end = batch[j] + 1;
        ++j;
      }
      // The gaps filled are fetched by this run: later windows skip them.
      planned.insert(first, end);
      runs.push_back({first, end - first});
      i = j;
    }
  }
  return runs;
}

}  // namespace ocifs
