#include "cache/range_plan.h"

#include <algorithm>

#include <tsl/robin_set.h>

namespace ocifs {
namespace {

// Whether a piece of [begin, end) is in an earlier run (a gap may not reach into one).
bool AnyPlanned(const tsl::robin_set<uint64_t>& planned, uint64_t begin, uint64_t end) {
  for (uint64_t p = begin; p < end; ++p) {
    if (planned.contains(p)) return true;
  }
  return false;
}

}  // namespace

std::vector<PieceRun> PlanPieceRuns(std::span<const uint64_t> pieces, uint64_t piece_count,
                                    const RangePlanOptions& options) {
  const uint64_t max_run = std::max<uint64_t>(1, options.max_run);
  const size_t window = static_cast<size_t>(std::max<uint64_t>(1, options.window));
  std::vector<PieceRun> runs;
  // Pieces already in a run (listed earlier, or a gap an earlier run filled).
  tsl::robin_set<uint64_t> planned;
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
             !AnyPlanned(planned, end, batch[j])) {
        end = batch[j] + 1;
        ++j;
      }
      // The gaps filled are fetched by this run: later windows skip them.
      for (uint64_t p = first; p < end; ++p) planned.insert(p);
      runs.push_back({first, end - first});
      i = j;
    }
  }
  return runs;
}

}  // namespace ocifs
