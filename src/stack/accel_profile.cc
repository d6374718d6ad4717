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
// How many bytes before a raw span are its block's header alone: at the
// unit's start (`first`; a deflate stored block's LEN and NLEN, its 3
// header bits share a byte with the block before), and between two spans
// with nothing decoded between them (`between`).
struct RawHeaders {
  uint64_t first;
  uint64_t between;
};
constexpr RawHeaders kZstdRawHeaders{3, 3};
constexpr RawHeaders kDeflateStoredHeaders{4, 5};

// Whether the blob's bytes [from, to) are all in `raw`'s spans but for the
// block headers before them.
bool AllRaw(const RawSpanTable& raw, uint64_t from, uint64_t to, RawHeaders headers) {
  const auto& spans = raw.spans();
  uint64_t at = from;
  while (at < to) {
    if (const size_t s = raw.SpanAtInput(at); s != RawSpanTable::npos) {
      at = spans[s].in + spans[s].size;
      continue;
    }
    // A header: the next span starts within kHeader bytes, right after
    // this one's predecessor (or at the unit's start).
    const size_t k = raw.FirstSpanAfterInput(at);
    if (k == RawSpanTable::npos || spans[k].in - at > (at == from ? headers.first : headers.between)) return false;
    if (at != from && (k == 0 || spans[k - 1].in + spans[k - 1].size != at ||
                       spans[k - 1].out + spans[k - 1].size != spans[k].out)) {
      return false;
    }
    at = spans[k].in;
  }
  return true;
}

AccessProfile Fit(const AccessProfile& profile, const std::string& layer_digest, uint64_t layer_size,
                  const CompressedSpans& spans, const std::vector<GzipIndex::WindowPlace>* windows,
                  const std::string& index_digest, const std::vector<uint64_t>* starts = nullptr,
                  const RawSpanTable* raw = nullptr, RawHeaders headers = kZstdRawHeaders,
                  const std::vector<std::pair<size_t, size_t>>* mates = nullptr) {
  auto recorded = profile.blobs.find(layer_digest);
  if (recorded == profile.blobs.end() || spans.empty() || profile.chunk_size == 0) return profile;
  const uint64_t unit = profile.chunk_size;
  std::vector<uint64_t> layer_units, index_units;
  tsl::robin_set<uint64_t> layer_seen, index_seen, spans_seen;
  for (uint64_t u : recorded->second) {
    const uint64_t from = u * unit, to = std::min(layer_size, (u + 1) * unit);
    if (from >= to) continue;
    if (raw && AllRaw(*raw, from, to, headers)) {
      AddUnits(u, u, layer_units, layer_seen);
      continue;
    }
    // The spans holding [from, to): from the last one starting at or before
    // `from` to the last one starting before `to`.
    auto first = std::upper_bound(spans.begin(), spans.end(), from,
                                  [](uint64_t at, const std::pair<uint64_t, uint64_t>& s) { return at < s.first; });
    // Span k, with its window.
    auto add_span = [&](size_t k) {
      if (!spans_seen.insert(k).second) return;
      const uint64_t start = starts ? std::min((*starts)[k], spans[k].first) : spans[k].first;
      const uint64_t end = std::min(layer_size, spans[k].second);
      if (end > start) AddUnits(start / unit, (end - 1) / unit, layer_units, layer_seen);
      if (windows && (*windows)[k].length > 0) {
        const GzipIndex::WindowPlace& w = (*windows)[k];
        AddUnits(w.offset / unit, (w.offset + w.length - 1) / unit, index_units, index_seen);
      }
    };
    size_t k = first == spans.begin() ? 0 : static_cast<size_t>(first - spans.begin()) - 1;
    for (; k < spans.size() && spans[k].first < to; ++k) {
      add_span(k);
      // The spans sharing a checksum block with it: a read verifies whole blocks.
      if (mates) {
        for (size_t m = (*mates)[k].first; m <= (*mates)[k].second && m < spans.size(); ++m) add_span(m);
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
  // A mount reads whole checksum blocks (a read's first and last widen to
  // theirs while not verified), so with a span come those whose output shares
  // a block with its output: from the last one starting at or before its
  // first block's start to the last one starting before its last block's end.
  std::vector<std::pair<size_t, size_t>> mates;
  const uint64_t block = gzip.index->block_size;
  if (block > 0) {
    auto last_at_or_before = [&](uint64_t out) {
      auto it = std::upper_bound(cps.begin(), cps.end(), out,
                                 [](uint64_t o, const GzipCheckpoint& cp) { return o < cp.out; });
      return it == cps.begin() ? size_t{0} : static_cast<size_t>(it - cps.begin()) - 1;
    };
    for (size_t k = 0; k < cps.size(); ++k) {
      const uint64_t end_out = k + 1 < cps.size() ? cps[k + 1].out : gzip.index->decompressed_size;
      const uint64_t block_end = (std::max(end_out, cps[k].out + 1) + block - 1) / block * block;
      mates.emplace_back(last_at_or_before(cps[k].out / block * block), last_at_or_before(block_end - 1));
    }
  }
  return Fit(profile, gzip.layer_digest, gzip.layer_size, spans, &windows, gzip.index_digest, nullptr, gzip.raw,
             kDeflateStoredHeaders, block > 0 ? &mates : nullptr);
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
  return Fit(profile, zstd.layer_digest, zstd.layer_size, spans, &dictionaries, zstd.index_digest, &starts,
             zstd.raw);
}

AccessProfile FitProfileToSpans(const AccessProfile& profile, const std::string& layer_digest, uint64_t layer_size,
                                const CompressedSpans& spans) {
  return Fit(profile, layer_digest, layer_size, spans, nullptr, "");
}

}  // namespace ocifs
