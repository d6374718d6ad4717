#include "stack/accel_profile.h"

#include <algorithm>

#include <tsl/robin_set.h>

namespace ocifs {

namespace {

// Appends units [first, last] of `size` bytes not seen yet, in order.
void AddUnits(uint64_t first, uint64_t last, std::vector<uint64_t>& out, tsl::robin_set<uint64_t>& seen) {
  for (uint64_t u = first; u <= last; ++u) {
    if (seen.insert(u).second) out.push_back(u);
  }
}

}  // namespace

AccessProfile FitProfileToGzipIndex(const AccessProfile& profile, const ShippedGzipIndex& gzip) {
  auto recorded = profile.blobs.find(gzip.layer_digest);
  if (recorded == profile.blobs.end() || gzip.index == nullptr || gzip.index->checkpoints.empty() ||
      profile.chunk_size == 0) {
    return profile;
  }
  const std::vector<GzipCheckpoint>& cps = gzip.index->checkpoints;
  const uint64_t unit = profile.chunk_size;
  // Where span k's compressed bytes start: its checkpoint's first byte (the
  // one holding its first bits, if any).
  auto span_start = [&](size_t k) { return cps[k].in - (cps[k].bits > 0 ? 1 : 0); };
  auto span_end = [&](size_t k) { return k + 1 < cps.size() ? cps[k + 1].in + 1 : gzip.layer_size; };

  std::vector<uint64_t> layer_units, index_units;
  tsl::robin_set<uint64_t> layer_seen, index_seen, spans_seen;
  for (uint64_t u : recorded->second) {
    const uint64_t from = u * unit, to = std::min(gzip.layer_size, (u + 1) * unit);
    if (from >= to) continue;
    // The spans holding [from, to): from the last checkpoint at or before
    // `from` to the last one before `to`.
    auto first = std::upper_bound(cps.begin(), cps.end(), from,
                                  [](uint64_t at, const GzipCheckpoint& cp) { return at < cp.in; });
    size_t k = first == cps.begin() ? 0 : static_cast<size_t>(first - cps.begin()) - 1;
    for (; k < cps.size() && span_start(k) < to; ++k) {
      if (!spans_seen.insert(k).second) continue;
      const uint64_t end = std::min(gzip.layer_size, span_end(k));
      if (end > span_start(k)) AddUnits(span_start(k) / unit, (end - 1) / unit, layer_units, layer_seen);
      if (cps[k].zwindow_length > 0) {
        AddUnits(cps[k].zwindow_offset / unit, (cps[k].zwindow_offset + cps[k].zwindow_length - 1) / unit,
                 index_units, index_seen);
      }
    }
    AddUnits(u, u, layer_units, layer_seen);  // a unit past the last span's end (the trailer)
  }
  AccessProfile fitted = profile;
  fitted.blobs[gzip.layer_digest] = std::move(layer_units);
  if (!index_units.empty() && !gzip.index_digest.empty()) fitted.blobs[gzip.index_digest] = std::move(index_units);
  return fitted;
}

}  // namespace ocifs
