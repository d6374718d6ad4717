#include "stack/accel_profile.h"

#include <algorithm>

#include <tsl/robin_set.h>

#include "decode/gzip_inflate.h"

namespace ocifs {

namespace {

// Appends units [first, last] of `size` bytes not seen yet, in order.
void AddUnits(uint64_t first, uint64_t last, std::vector<uint64_t>& out, tsl::robin_set<uint64_t>& seen) {
  for (uint64_t u = first; u <= last; ++u) {
    if (seen.insert(u).second) out.push_back(u);
  }
}


// `profile` fitted to `spans` (sorted by their first byte) of layer
// `layer_digest`; with `windows` (one per span: where its checkpoint's window
// lies in blob `index_digest`, length 0 for none), the index blob's section
// too; with `starts` (one per span, at or before its first byte: where a read
// of it starts decoding), each span named from there.
AccessProfile Fit(const AccessProfile& profile, const std::string& layer_digest, uint64_t layer_size,
                  const CompressedSpans& spans, const std::vector<GzipIndex::WindowPlace>* windows,
                  const std::string& index_digest, const std::vector<uint64_t>* starts = nullptr) {
  auto recorded = profile.blobs.find(layer_digest);
  if (recorded == profile.blobs.end() || spans.empty() || profile.chunk_size == 0) return profile;
  const uint64_t unit = profile.chunk_size;
  std::vector<uint64_t> layer_units, index_units;
  tsl::robin_set<uint64_t> layer_seen, index_seen, spans_seen;
  for (uint64_t u : recorded->second) {
    const uint64_t from = u * unit, to = std::min(layer_size, (u + 1) * unit);
    if (from >= to) continue;
    // The spans holding [from, to): from the last one starting at or before
    // `from` to the last one starting before `to`.
    auto first = std::upper_bound(spans.begin(), spans.end(), from,
                                  [](uint64_t at, const std::pair<uint64_t, uint64_t>& s) { return at < s.first; });
    size_t k = first == spans.begin() ? 0 : static_cast<size_t>(first - spans.begin()) - 1;
    for (; k < spans.size() && spans[k].first < to; ++k) {
      if (!spans_seen.insert(k).second) continue;
      const uint64_t start = starts ? std::min((*starts)[k], spans[k].first) : spans[k].first;
      const uint64_t end = std::min(layer_size, spans[k].second);
      if (end > start) AddUnits(start / unit, (end - 1) / unit, layer_units, layer_seen);
      if (windows && (*windows)[k].length > 0) {
        const GzipIndex::WindowPlace& w = (*windows)[k];
        AddUnits(w.offset / unit, (w.offset + w.length - 1) / unit, index_units, index_seen);
      }
    }
    AddUnits(u, u, layer_units, layer_seen);  // a unit past the last span's end (the trailer)
  }
  AccessProfile fitted = profile;
  fitted.blobs[layer_digest] = std::move(layer_units);
  if (!index_units.empty() && !index_digest.empty()) fitted.blobs[index_digest] = std::move(index_units);
  return fitted;
}

}  // namespace

AccessProfile FitProfileToGzipIndex(const AccessProfile& profile, const ShippedGzipIndex& gzip) {
  if (gzip.index == nullptr) return profile;
  const std::vector<GzipCheckpoint>& cps = gzip.index->checkpoints;
  CompressedSpans spans;
  std::vector<GzipIndex::WindowPlace> windows;
  for (size_t k = 0; k < cps.size(); ++k) {
    // From its checkpoint's first byte (the one holding its first bits, if
    // any) to the byte holding the next one's.
    spans.emplace_back(cps[k].in - (cps[k].bits > 0 ? 1 : 0),
                       k + 1 < cps.size() ? cps[k + 1].in + 1 + kSpanReadPast : gzip.layer_size);
    windows.push_back({cps[k].zwindow_offset, cps[k].zwindow_length});
  }
  return Fit(profile, gzip.layer_digest, gzip.layer_size, spans, &windows, gzip.index_digest);
}

AccessProfile FitProfileToZstdCheckpoints(const AccessProfile& profile, const ShippedZstdCheckpoints& zstd) {
  if (zstd.index == nullptr) return profile;
  const ZstdCheckpointIndex& index = *zstd.index;
  // A unit belongs to the segment whose own blocks hold it; a read of that
  // segment decodes from its restart checkpoint, with that one's dictionary.
  CompressedSpans spans;
  std::vector<uint64_t> starts;
  std::vector<GzipIndex::WindowPlace> dictionaries;
  for (size_t k = 0; k < index.checkpoints.size(); ++k) {
    const auto [from, to] = index.SegmentInput(k);
    spans.emplace_back(index.checkpoints[k].in, to);
    starts.push_back(from);
    const ZstdCheckpoint& restart = index.checkpoints[index.RestartOf(k)];
    const bool has = restart.kind == ZstdCheckpoint::Kind::kDictionary && restart.zdict_length > 0;
    dictionaries.push_back({has ? restart.zdict_offset : 0, has ? restart.zdict_length : 0u});
  }
  return Fit(profile, zstd.layer_digest, zstd.layer_size, spans, &dictionaries, zstd.index_digest, &starts);
}

AccessProfile FitProfileToSpans(const AccessProfile& profile, const std::string& layer_digest, uint64_t layer_size,
                                const CompressedSpans& spans) {
  return Fit(profile, layer_digest, layer_size, spans, nullptr, "");
}

}  // namespace ocifs
