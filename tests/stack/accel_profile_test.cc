#include "stack/accel_profile.h"

#include <catch2/catch.hpp>

using namespace ocifs;

namespace {

// Checkpoints at compressed offsets `ins` (no bits), each with a window of
// 40000 bytes at 100000 + k * 40000 in the index blob (none for the first).
GzipIndex IndexAt(const std::vector<uint64_t>& ins) {
  GzipIndex index;
  for (size_t k = 0; k < ins.size(); ++k) {
    GzipCheckpoint cp;
    cp.in = ins[k];
    cp.out = ins[k];
    if (k > 0) {
      cp.window_size = 32768;
      cp.zwindow_offset = 100000 + k * 40000;
      cp.zwindow_length = 40000;
    }
    index.checkpoints.push_back(cp);
  }
  return index;
}

constexpr uint64_t kUnit = 65536;

// A profile of 64 KiB units naming `units` of `blob`.
AccessProfile ProfileOf(const std::string& blob, std::vector<uint64_t> units) {
  AccessProfile profile;
  profile.chunk_size = kUnit;
  profile.blobs[blob] = std::move(units);
  return profile;
}

// `profile` fitted to an index with checkpoints at 0 and 10 units, of a 20-unit layer.
AccessProfile FitToTwoSpans(const AccessProfile& profile) {
  GzipIndex index = IndexAt({0, 10 * kUnit});
  return FitProfileToGzipIndex(profile, {"sha256:layer", 20 * kUnit, &index, "sha256:index"});
}

}  // namespace

TEST_CASE("a profile fitted to a gzip index names whole spans and their windows, in the recorded order") {
  // Spans [0, 10u), [10u, 12u + 100), [12u + 100, 30u), [30u, end 40u).
  GzipIndex index = IndexAt({0, 10 * kUnit, 12 * kUnit + 100, 30 * kUnit});
  AccessProfile profile;
  profile.chunk_size = kUnit;
  profile.blobs["sha256:layer"] = {11, 31, 12};
  profile.blobs["sha256:other"] = {7};
  ShippedGzipIndex shipped{"sha256:layer", 40 * kUnit, &index, "sha256:index"};
  AccessProfile fitted = FitProfileToGzipIndex(profile, shipped);

  // Unit 11: span 1 (units 10-12, its end byte 12u+100 is in unit 12); unit 31:
  // span 3 (30-39); unit 12: spans 1 and 2 (12-30, the byte after span 2 holding
  // its last bits).
  std::vector<uint64_t> layer;
  for (uint64_t u : {10, 11, 12}) layer.push_back(u);
  for (uint64_t u = 30; u < 40; ++u) layer.push_back(u);
  for (uint64_t u = 13; u < 30; ++u) layer.push_back(u);
  CHECK(fitted.blobs.at("sha256:layer") == layer);
  // Windows of spans 1, 3, 2: [140000, 180000) is units 2; [220000, 260000): 3;
  // [180000, 220000): 2-3.
  CHECK(fitted.blobs.at("sha256:index") == std::vector<uint64_t>{2, 3});
  CHECK(fitted.blobs.at("sha256:other") == std::vector<uint64_t>{7});
  CHECK(fitted.chunk_size == kUnit);
}

TEST_CASE("a profile that does not name the layer is shipped as it is") {
  const AccessProfile profile = ProfileOf("sha256:other", {1, 2});
  CHECK(FitToTwoSpans(profile).blobs == profile.blobs);
}

TEST_CASE("a fitted profile's unit in the first span takes no window, and one past the layer's end is dropped") {
  AccessProfile fitted = FitToTwoSpans(ProfileOf("sha256:layer", {3, 50}));
  std::vector<uint64_t> layer;
  for (uint64_t u = 0; u <= 10; ++u) layer.push_back(u);  // span 0 ends at byte 10u (the next checkpoint's)
  CHECK(fitted.blobs.at("sha256:layer") == layer);
  CHECK(fitted.blobs.count("sha256:index") == 0);
}

TEST_CASE("a profile fitted to a mount's own spans names every span its units touch, whole") {
  // A node's own index: spans of about 1 MiB; the profile names a few bytes reads needed.
  const CompressedSpans spans = {{0, 16 * kUnit + 1}, {16 * kUnit, 32 * kUnit + 1}, {32 * kUnit, 40 * kUnit}};
  AccessProfile profile;
  profile.chunk_size = kUnit;
  profile.blobs["sha256:layer"] = {20, 3};
  AccessProfile fitted = FitProfileToSpans(profile, "sha256:layer", 40 * kUnit, spans);
  std::vector<uint64_t> layer;
  for (uint64_t u = 16; u <= 32; ++u) layer.push_back(u);  // span 1, to the byte holding span 2's first bits
  for (uint64_t u = 0; u < 16; ++u) layer.push_back(u);    // span 0 (unit 16 already named)
  CHECK(fitted.blobs.at("sha256:layer") == layer);
  CHECK(fitted.blobs.size() == 1);  // no index section without windows
}

TEST_CASE("a profile fitted to a zstd checkpoint index names segments from their restart, and their dictionaries") {
  // Checkpoints: a frame start at 0, a dictionary one at 10u (its dictionary at
  // [300000, 340000) of the index blob), one decoded from the frame start
  // before it at 20u, and a frame start at 30u; the layer is 40 units.
  ZstdCheckpointIndex index;
  index.blob_size = 40 * kUnit;
  auto add = [&](uint64_t in, ZstdCheckpoint::Kind kind) {
    ZstdCheckpoint cp;
    cp.in = in;
    cp.out = in;
    cp.kind = kind;
    if (kind == ZstdCheckpoint::Kind::kDictionary) {
      cp.zdict_offset = 300000;
      cp.zdict_length = 40000;
    }
    index.checkpoints.push_back(cp);
  };
  add(0, ZstdCheckpoint::Kind::kFrameStart);
  add(10 * kUnit, ZstdCheckpoint::Kind::kDictionary);
  add(20 * kUnit, ZstdCheckpoint::Kind::kFromFrameStart);
  add(30 * kUnit, ZstdCheckpoint::Kind::kFrameStart);
  CHECK(index.SegmentInput(1) == std::pair<uint64_t, uint64_t>(10 * kUnit, 20 * kUnit));
  CHECK(index.SegmentInput(2) == std::pair<uint64_t, uint64_t>(0, 30 * kUnit));  // from the frame start
  CHECK(index.SegmentInput(3) == std::pair<uint64_t, uint64_t>(30 * kUnit, 40 * kUnit));

  AccessProfile fitted = FitProfileToZstdCheckpoints(ProfileOf("sha256:layer", {12, 35}),
                                                     {"sha256:layer", 40 * kUnit, &index, "sha256:index"});
  std::vector<uint64_t> layer;
  for (uint64_t u = 10; u < 20; ++u) layer.push_back(u);  // unit 12: segment 1 (its own blocks hold it)
  for (uint64_t u = 30; u < 40; ++u) layer.push_back(u);  // unit 35: segment 3
  CHECK(fitted.blobs.at("sha256:layer") == layer);
  // Segment 1's dictionary ([300000, 340000): units 4-5); segment 3 restarts without one.
  CHECK(fitted.blobs.at("sha256:index") == std::vector<uint64_t>{4, 5});

  // Unit 25 lies in segment 2, decoded from the frame start at 0: units 0-29, no dictionary.
  fitted = FitProfileToZstdCheckpoints(ProfileOf("sha256:layer", {25}),
                                       {"sha256:layer", 40 * kUnit, &index, "sha256:index"});
  layer.clear();
  for (uint64_t u = 0; u < 30; ++u) layer.push_back(u);
  CHECK(fitted.blobs.at("sha256:layer") == layer);
  CHECK(fitted.blobs.count("sha256:index") == 0);
}

TEST_CASE("a fitted span reaches as far past the next checkpoint as a read of it reads") {
  // A read of span 0 reads its compressed bytes to 64 bytes past the next
  // checkpoint's byte (kSpanReadPast): when those cross into the next unit,
  // the profile names that unit too, so the read is served from its pieces.
  GzipIndex index = IndexAt({0, 10 * kUnit - 30});
  AccessProfile fitted = FitProfileToGzipIndex(ProfileOf("sha256:layer", {3}), {"sha256:layer", 20 * kUnit, &index, "sha256:index"});
  std::vector<uint64_t> layer;
  for (uint64_t u = 0; u <= 10; ++u) layer.push_back(u);
  CHECK(fitted.blobs.at("sha256:layer") == layer);
}

namespace {

// A raw span table over `spans` (blob = decoded offsets), checksums left 0.
RawSpanTable RawTableOf(uint64_t size, std::vector<RawSpan> spans) {
  size_t units = 0;
  for (const RawSpan& s : spans) units += (s.in + s.size - 1) / 4096 - s.in / 4096 + 1;
  auto t = RawSpanTable::Make(size, size, 4096, std::move(spans), std::vector<uint32_t>(units, 0));
  REQUIRE(t.ok());
  return std::move(t).value();
}

}  // namespace

TEST_CASE("a profile fitted to a zstd checkpoint index keeps the units inside raw blocks as they are") {
  ZstdCheckpointIndex index;
  index.blob_size = 40 * kUnit;
  for (uint64_t k : {0, 10, 20, 30}) {
    ZstdCheckpoint cp;
    cp.in = cp.out = k * kUnit;
    cp.kind = k == 0 || k == 30 ? ZstdCheckpoint::Kind::kFrameStart : ZstdCheckpoint::Kind::kDictionary;
    cp.zdict_offset = 300000;
    cp.zdict_length = k == 0 || k == 30 ? 0 : 40000;
    index.checkpoints.push_back(cp);
  }
  // Two consecutive raw blocks in segment 1 (a 3-byte header before each):
  // [12u + 3, 13u) and [13u + 3, 14u + 100); one more in segment 2 after a
  // 100-byte compressed block: [21u + 100, 23u).
  const RawSpanTable raw = RawTableOf(40 * kUnit, {{12 * kUnit + 3, 12 * kUnit + 3, kUnit - 3},
                                                   {13 * kUnit + 3, 13 * kUnit, kUnit + 97},
                                                   {21 * kUnit + 100, 21 * kUnit + 97, 2 * kUnit - 100}});
  const ShippedZstdCheckpoints shipped{"sha256:layer", 40 * kUnit, &index, "sha256:index", &raw};
  // Units 12 and 13 are all raw (the headers aside): kept alone. Unit 14 ends
  // in a compressed block: its segment, whole.
  AccessProfile fitted = FitProfileToZstdCheckpoints(ProfileOf("sha256:layer", {12, 13, 14}), shipped);
  CHECK(fitted.blobs.at("sha256:layer") == std::vector<uint64_t>{12, 13, 10, 11, 14, 15, 16, 17, 18, 19});
  CHECK(fitted.blobs.at("sha256:index") == std::vector<uint64_t>{4, 5});
  // Only raw units: no segment, and no dictionary either.
  fitted = FitProfileToZstdCheckpoints(ProfileOf("sha256:layer", {22, 12}), shipped);
  CHECK(fitted.blobs.at("sha256:layer") == std::vector<uint64_t>{22, 12});
  CHECK(fitted.blobs.count("sha256:index") == 0);
  // Unit 21 starts with 100 bytes of a compressed block: not raw.
  fitted = FitProfileToZstdCheckpoints(ProfileOf("sha256:layer", {21}), shipped);
  CHECK(fitted.blobs.at("sha256:layer").size() == 10);  // segment 2, from its own dictionary
  // Without the table, the same units are segments.
  const ShippedZstdCheckpoints without{"sha256:layer", 40 * kUnit, &index, "sha256:index"};
  fitted = FitProfileToZstdCheckpoints(ProfileOf("sha256:layer", {22, 12}), without);
  CHECK(fitted.blobs.at("sha256:layer").size() == 20);
}

TEST_CASE("a profile fitted to a gzip index with checksums also names the spans sharing a checksum block") {
  // Checkpoints at outs 0, 10u, 20u + 4096, 24u, 40u (ins equal): with 64 KiB
  // blocks the span [10u, 20u + 4096) ends inside block 20, which span
  // [20u + 4096, 24u) holds the rest of: a read near the end of the first
  // verifies block 20 whole, so it needs the second as well; span [24u, 40u)
  // starts on a block boundary and shares none with it.
  GzipIndex index = IndexAt({0, 10 * kUnit, 20 * kUnit + 4096, 24 * kUnit, 40 * kUnit});
  index.block_size = kUnit;
  index.decompressed_size = 48 * kUnit;
  ShippedGzipIndex shipped{"sha256:layer", 48 * kUnit, &index, "sha256:index"};
  AccessProfile fitted = FitProfileToGzipIndex(ProfileOf("sha256:layer", {15}), shipped);
  std::vector<uint64_t> layer;
  for (uint64_t u = 10; u <= 20; ++u) layer.push_back(u);  // its own span, to the byte holding the next one's start
  for (uint64_t u = 21; u <= 24; ++u) layer.push_back(u);  // the block mate [20u + 4096, 24u]
  // Span 1 starts at out 10u, a block boundary: span 0 is no mate.
  CHECK(fitted.blobs.at("sha256:layer") == layer);
  // Windows of spans 1 and 2.
  CHECK(fitted.blobs.at("sha256:index") == std::vector<uint64_t>{2, 3});
  // Without checksums (block_size 0), the span alone.
  index.block_size = 0;
  AccessProfile alone = FitProfileToGzipIndex(ProfileOf("sha256:layer", {15}), shipped);
  std::vector<uint64_t> own;
  for (uint64_t u = 10; u <= 20; ++u) own.push_back(u);
  CHECK(alone.blobs.at("sha256:layer") == own);
}

TEST_CASE("a profile fitted to a gzip index keeps the units inside stored blocks as they are") {
  // Spans [0, 10u), [10u, 20u), [20u, 40u); a stored block's bytes at
  // [12u + 4, 14u) (its LEN and NLEN, 4 bytes, before them).
  GzipIndex index = IndexAt({0, 10 * kUnit, 20 * kUnit});
  const RawSpanTable raw = RawTableOf(40 * kUnit, {{12 * kUnit + 4, 12 * kUnit, 2 * kUnit - 4}});
  const ShippedGzipIndex shipped{"sha256:layer", 40 * kUnit, &index, "sha256:index", &raw};
  AccessProfile fitted = FitProfileToGzipIndex(ProfileOf("sha256:layer", {13, 12}), shipped);
  CHECK(fitted.blobs.at("sha256:layer") == std::vector<uint64_t>{13, 12});
  CHECK(fitted.blobs.count("sha256:index") == 0);
  // Without the table (or for a unit reaching past the block), the span and its window.
  const ShippedGzipIndex without{"sha256:layer", 40 * kUnit, &index, "sha256:index"};
  CHECK(FitProfileToGzipIndex(ProfileOf("sha256:layer", {13}), without).blobs.at("sha256:layer").size() == 11);
  CHECK(FitProfileToGzipIndex(ProfileOf("sha256:layer", {14}), shipped).blobs.at("sha256:layer").size() == 11);
}
