#include "decode/gzip_target_placer.h"

#include <zlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>

#include "base/memory_source.h"
#include "decode/decoder.h"
#include "decode/gzip_index.h"
#include "decode/gzip_saved_index.h"
#include "decode/gzip_source.h"
#include "testing/concurrent_reads.h"
#include "testing/counting_source.h"
#include "testing/layer_test_data.h"
#include "testing/temp_dir.h"

using namespace ocifs;

namespace {

constexpr uint64_t kGap = 64 << 10;
// A deflate block of zlib's (16K symbols) takes less than this compressed.
constexpr uint64_t kMaxBlock = 128 << 10;

std::shared_ptr<GzipSource> Open(ByteSourcePtr blob, const DecoderOptions& options) {
  auto source = GzipSource::Open(std::move(blob), options);
  REQUIRE(source.ok());
  return *source;
}

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

// The first pass over `gz` with these targets, its index saved at `path` (a new file); returns the index.
GzipIndex BuildIndex(const std::vector<uint8_t>& gz, Ranges targets, const std::string& path,
                     uint64_t budget = 3584, uint64_t window_bytes = 24 << 20, uint64_t spacing = 0) {
  DecoderOptions options;
  if (spacing) options.checkpoint_spacing = spacing;
  options.max_target_window_bytes = window_bytes;
  options.index_path = path;
  options.checkpoint_targets = std::move(targets);
  options.checkpoint_target_gap = kGap;
  options.checkpoint_target_spacing = kGap;
  options.max_target_checkpoints = budget;
  REQUIRE(Open(std::make_shared<MemorySource>(gz), options)->WaitUntilIndexed().ok());
  auto index = GzipIndex::Load(path);
  REQUIRE(index.ok());
  return std::move(index).value();
}

// Every deflate block boundary of a one-member `gz`: {in, out}.
std::vector<std::pair<uint64_t, uint64_t>> BlockBoundaries(const std::vector<uint8_t>& gz) {
  z_stream z{};
  REQUIRE(inflateInit2(&z, 31) == Z_OK);
  std::vector<uint8_t> out(1 << 20);
  std::vector<std::pair<uint64_t, uint64_t>> found;
  z.next_in = const_cast<Bytef*>(gz.data());
  z.avail_in = static_cast<uInt>(gz.size());
  int ret = Z_OK;
  while (ret == Z_OK) {
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    ret = inflate(&z, Z_BLOCK);
    if ((z.data_type & 128) && !(z.data_type & 64)) found.emplace_back(z.total_in, z.total_out);
  }
  inflateEnd(&z);
  REQUIRE(ret == Z_STREAM_END);
  return found;
}

// The last checkpoint whose `in` is at or before `target`.
const GzipCheckpoint& Before(const GzipIndex& index, uint64_t target) {
  auto it = std::upper_bound(index.checkpoints.begin(), index.checkpoints.end(), target,
                             [](uint64_t t, const GzipCheckpoint& c) { return t < c.in; });
  REQUIRE(it != index.checkpoints.begin());
  return *std::prev(it);
}

// `count` random 64 KiB chunks of a blob of `size` bytes, as ranges.
Ranges RandomTargets(size_t count, uint64_t size, uint32_t seed) {
  std::mt19937_64 rng(seed);
  Ranges t(count);
  for (auto& [first, second] : t) {
    first = (rng() % (size >> 16)) << 16;
    second = std::min<uint64_t>(first + 65536, size);
  }
  return t;
}

// A layer with `count` random target chunks: its index without and with them, and its block boundaries.
struct PlacerLayer {
  std::vector<uint8_t> data, gz;
  Ranges targets;
  GzipIndex plain, index;
  std::vector<std::pair<uint64_t, uint64_t>> boundaries;
};
PlacerLayer BuildLayer(const ocifs::testing::TempDir& dir, std::vector<uint8_t> data, size_t count, uint32_t seed) {
  PlacerLayer l;
  l.data = std::move(data);
  l.gz = ocifs::testing::GzipMember(l.data);
  l.targets = RandomTargets(count, l.gz.size(), seed);
  l.plain = BuildIndex(l.gz, {}, dir / "plain.gzidx");
  l.index = BuildIndex(l.gz, l.targets, dir / "targets.gzidx");
  l.boundaries = BlockBoundaries(l.gz);
  return l;
}

void PlacerCheckReads(const ByteSource& source, const std::vector<uint8_t>& data, int reads, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> buf;
  for (int i = 0; i < reads; ++i) {
    const uint64_t offset = rng() % data.size();
    buf.resize(std::min<size_t>(1 + rng() % 200000, data.size() - offset));
    auto n = source.ReadAt(offset, buf);
    REQUIRE(n.ok());
    REQUIRE(*n == buf.size());
    REQUIRE(std::equal(buf.begin(), buf.end(), data.begin() + static_cast<ptrdiff_t>(offset)));
  }
}

}  // namespace

TEST_CASE("Plan merges ranges closer than the gap, and places points before, inside and after each") {
  using P = GzipTargetPlacer::Point;
  CHECK(GzipTargetPlacer::Plan({{500, 600}, {0, 100}, {150, 200}, {1000, 1500}}, 200, 100) ==
        std::vector<P>{{0, false}, {200, true}, {500, false}, {600, true}, {1000, false}, {1200, false},
                       {1400, false}, {1500, true}});
  CHECK(GzipTargetPlacer::Plan({{5, 6}, {3, 4}, {7, 7}}, 0, 10) ==
        std::vector<P>{{3, false}, {4, true}, {5, false}, {6, true}});
  CHECK(GzipTargetPlacer::Plan({{1, 2}}, 1, 0).empty());
  // A spacing apart from the gap: ranges merge by the gap, points inside come every spacing.
  CHECK(GzipTargetPlacer::Plan({{0, 1000}, {1050, 1100}, {1300, 1400}}, 100, 100, 300) ==
        std::vector<P>{{0, false}, {300, false}, {600, false}, {900, false}, {1100, true}, {1300, false},
                       {1400, true}});
  Ranges many;
  for (uint64_t i = 0; i < 1000; ++i) many.emplace_back(i * 100000, i * 100000 + 65536);
  const std::vector<P> fit = GzipTargetPlacer::Plan(many, 65536, 300);
  REQUIRE(fit.size() <= 300);
  CHECK(fit.size() >= 100);  // evenly thinned, not cut off
  CHECK(fit.back().at >= 99000000);
}

TEST_CASE("Plan of ranges at the top of the offsets, or of any length, ends with at most the budget") {
  // A profile given to `oci-fs accelerate` names chunks by number: their
  // offsets may be anywhere up to 2^64, and a range may span petabytes.
  using P = GzipTargetPlacer::Point;
  const uint64_t top = std::numeric_limits<uint64_t>::max();
  const std::vector<P> high = GzipTargetPlacer::Plan({{top - 1000, top}}, 32 << 10, 100, 256 << 10);
  CHECK(high == std::vector<P>{{top - 1000, false}, {top, true}});
  // Ranges a gap apart at the top merge (their gap does not wrap around).
  CHECK(GzipTargetPlacer::Plan({{top - 3000, top - 2000}, {top - 1000, top}}, 32 << 10, 100, 256 << 10) ==
        std::vector<P>{{top - 3000, false}, {top, true}});
  const std::vector<P> huge = GzipTargetPlacer::Plan({{0, uint64_t{1} << 60}, {top - 10, top}}, 32 << 10, 100);
  REQUIRE(huge.size() <= 100);
  CHECK(std::is_sorted(huge.begin(), huge.end(), [](const P& a, const P& b) { return a.at < b.at; }));
}

TEST_CASE("with targets, the saved index has checkpoints shortly before and after each target, and reads through it are exact") {
  ocifs::testing::TempDir dir("ocifs-gztargets");
  const PlacerLayer l = BuildLayer(dir, ocifs::testing::MakeLayerData(24 << 20, 7), 40, 8);
  const auto& [data, gz, targets, plain, index, boundaries] = l;
  CHECK(index.checkpoints.size() > plain.checkpoints.size());
  uint64_t plain_far = 0;
  for (const auto& [first, second] : targets) {
    INFO("target " << first << ".." << second);
    // Before: at most one checksum block of output and a deflate block before it.
    CHECK(first - Before(index, first).in < kGap + 2 * kMaxBlock);
    plain_far = std::max(plain_far, first - Before(plain, first).in);
    // After: the first block boundary at or after its end that is past the end of the
    // 64 KiB checksum block holding the first boundary's output (the target's output ends there).
    auto boundary = std::lower_bound(boundaries.begin(), boundaries.end(), std::pair<uint64_t, uint64_t>{second, 0});
    if (boundary != boundaries.end()) {
      const uint64_t block_end = (boundary->second + 65535) / 65536 * 65536;
      while (boundary != boundaries.end() && boundary->second < block_end) ++boundary;
    }
    const bool merged = std::any_of(targets.begin(), targets.end(), [&, e = second](const auto& r) {
      return r.first <= e + kGap && r.second > e;  // another target continues it (Plan merges them)
    });
    if (boundary != boundaries.end() && !merged) {
      const auto next = std::lower_bound(index.checkpoints.begin(), index.checkpoints.end(), second,
                                         [](const GzipCheckpoint& c, uint64_t e) { return c.in < e; });
      REQUIRE(next != index.checkpoints.end());
      CHECK(next->in == boundary->first);
    }
  }
  CHECK(plain_far > kGap + 2 * kMaxBlock);  // the regular checkpoints alone are farther apart
  // Valid (Load parsed and checked it: sorted, windows inflate), version 3 with checksums.
  std::ifstream file(dir / "targets.gzidx", std::ios::binary);
  const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(file), {}};
  REQUIRE(bytes.size() > 16);
  CHECK(bytes[8] == 3);
  REQUIRE(index.has_checksums());
  CHECK(index.block_crcs.size() == (data.size() + 65535) / 65536);
  CHECK(UntrustedGzipIndex(bytes, "with targets").ok());

  // The next open loads it, verifies its reads against the checksums, and reads right.
  DecoderOptions options;
  options.index_path = dir / "targets.gzidx";
  auto loaded = Open(std::make_shared<MemorySource>(gz), options);
  REQUIRE(loaded->loaded_from_file());
  REQUIRE(loaded->verifies_reads());
  CHECK(loaded->checkpoint_count() == index.checkpoints.size());
  PlacerCheckReads(*loaded, data, 200, 9);
}

TEST_CASE("a small read at a target fetches and inflates from just before it, far less than through the regular index") {
  ocifs::testing::TempDir dir("ocifs-gztargets-fetch");
  const PlacerLayer l = BuildLayer(dir, ocifs::testing::MakeTextData(16 << 20, 11), 20, 12);
  const auto& [data, gz, targets, plain, index, boundaries] = l;
  // Compressed bytes a verified 4 KiB read at decompressed offset `at` reads through the index at `path`.
  auto fetched = [&](const std::string& path, uint64_t at) {
    DecoderOptions options;
    options.index_path = path;
    auto counted = std::make_shared<ocifs::testing::CountingSource>(std::make_shared<MemorySource>(gz));
    auto loaded = Open(counted, options);
    REQUIRE(loaded->verifies_reads());
    const uint64_t before = counted->bytes.load();  // the identity check's tail read
    std::vector<uint8_t> buf(4096);
    REQUIRE(loaded->ReadAt(at, buf).ok());
    REQUIRE(std::equal(buf.begin(), buf.end(), data.begin() + static_cast<ptrdiff_t>(at)));
    return counted->bytes.load() - before;
  };
  uint64_t with = 0, without = 0;
  for (const auto& [first, second] : targets) {
    // Data whose compressed bits are in the target: past the last block boundary before it by
    // at least as many bytes as the compressed ones from the boundary to the target (deflate
    // makes at least about a byte of output per byte of input; the placer counts on 9/10).
    auto b = std::upper_bound(boundaries.begin(), boundaries.end(), std::pair<uint64_t, uint64_t>{first, UINT64_MAX});
    if (b == boundaries.begin()) continue;
    const uint64_t at = std::min<uint64_t>(std::prev(b)->second + (first - std::prev(b)->first), data.size() - 4096);
    INFO("target " << first << ", read at " << at);
    const uint64_t bytes = fetched(dir / "targets.gzidx", at);
    CHECK(bytes < (second - first) + 4 * kMaxBlock);
    with += bytes;
    without += fetched(dir / "plain.gzidx", at);
  }
  // The span a read there inflates runs from just before the target to past the end of the
  // 64 KiB checksum block its last bytes are in (about 20 KiB of this text's compressed bytes).
  CHECK(with * 3 < without * 2);
  // The compressed range a read needs ends at the next checkpoint's in (and its mid-byte start).
  GzipCheckpoints table;
  table.Reset(index.checkpoints);
  for (size_t i = 1; i + 1 < index.checkpoints.size(); ++i) {
    const auto [from, to] = table.CompressedRange(index.checkpoints[i].out, index.checkpoints[i].out + 1, gz.size());
    CHECK(from + 1 == index.checkpoints[i].in);
    CHECK(to == index.checkpoints[i + 1].in + 1);
  }
}

TEST_CASE("the extra checkpoints respect their budget") {
  ocifs::testing::TempDir dir("ocifs-gztargets-budget");
  const std::vector<uint8_t> data = ocifs::testing::MakeLayerData(16 << 20, 21);
  const std::vector<uint8_t> gz = ocifs::testing::GzipMember(data);
  Ranges every;  // 4 KiB every 512 KiB of the blob: two points each
  for (uint64_t t = 0; t + 4096 < gz.size(); t += 512 << 10) every.emplace_back(t, t + 4096);
  REQUIRE(every.size() >= 10);
  const GzipIndex plain = BuildIndex(gz, {}, dir / "plain.gzidx");
  for (uint64_t budget : {0, 1, 10, 40}) {
    INFO("budget " << budget);
    const GzipIndex index = BuildIndex(gz, every, dir / ("budget" + std::to_string(budget) + ".gzidx"), budget);
    CHECK(index.checkpoints.size() <= plain.checkpoints.size() + budget);
    if (budget >= 2 * every.size()) CHECK(index.checkpoints.size() > plain.checkpoints.size() + every.size());
  }
  // And their windows' bytes: none fits in 1.
  CHECK(BuildIndex(gz, every, dir / "window.gzidx", 40, 1).checkpoints.size() == plain.checkpoints.size());
}

TEST_CASE("targets across gzip members and at the blob's edges place valid checkpoints") {
  ocifs::testing::TempDir dir("ocifs-gztargets-members");
  std::vector<uint8_t> data, gz;
  for (uint32_t m = 0; m < 4; ++m) {
    const std::vector<uint8_t> part = ocifs::testing::MakeLayerData((3 << 20) + m * 7777, 30 + m);
    const std::vector<uint8_t> member = ocifs::testing::GzipMember(part);
    data.insert(data.end(), part.begin(), part.end());
    gz.insert(gz.end(), member.begin(), member.end());
  }
  Ranges targets = RandomTargets(30, gz.size(), 31);
  targets.insert(targets.end(), {{0, 1}, {gz.size() - 1, gz.size()}, {gz.size(), gz.size() + 100}});
  const GzipIndex index = BuildIndex(gz, targets, dir / "layer.gzidx");
  for (const auto& [first, second] : targets) {
    if (first >= gz.size()) continue;
    INFO("target " << first);
    CHECK(first - Before(index, first).in < kGap + 2 * kMaxBlock);
  }
  DecoderOptions options;
  options.index_path = dir / "layer.gzidx";
  auto loaded = Open(std::make_shared<MemorySource>(gz), options);
  REQUIRE(loaded->loaded_from_file());
  PlacerCheckReads(*loaded, data, 150, 32);
}

TEST_CASE("readers during a first pass with targets see the original bytes") {
  // Placed checkpoints arrive behind the pass's frontier: the span it is
  // producing splits there, and readers following it must still read right.
  const std::vector<uint8_t> data = ocifs::testing::MakeLayerData(12 << 20, 41);
  const std::vector<uint8_t> gz = ocifs::testing::GzipMember(data);
  DecoderOptions options;
  options.checkpoint_spacing = 256 << 10;
  options.segment_cache_bytes = 1 << 20;
  options.checkpoint_targets = RandomTargets(150, gz.size(), 42);
  options.checkpoint_target_gap = 16 << 10;
  options.checkpoint_target_spacing = 16 << 10;  // many placements, behind the frontier
  auto source = Open(std::make_shared<MemorySource>(gz), options);
  CHECK(ocifs::testing::ConcurrentReadMismatches(*source, data, 6, 60, 43) == 0);
  REQUIRE(source->WaitUntilIndexed().ok());
  DecoderOptions regular = options;
  regular.checkpoint_targets.clear();
  auto plain = Open(std::make_shared<MemorySource>(gz), regular);
  REQUIRE(plain->WaitUntilIndexed().ok());
  CHECK(source->checkpoint_count() > plain->checkpoint_count() + 20);
  PlacerCheckReads(*source, data, 100, 44);
}

TEST_CASE("a read of a target's last bytes stays in the span placed around it, short of the regular span after it") {
  // The checkpoint after a target is past the end of the checksum block its
  // last output is in: a verified read there (which reads that block whole)
  // inflates and fetches no byte of the long span that follows.
  ocifs::testing::TempDir dir("ocifs-gztargets-after");
  const std::vector<uint8_t> data = ocifs::testing::MakeLayerData(16 << 20, 21);
  const std::vector<uint8_t> gz = ocifs::testing::GzipMember(data);
  const Ranges targets = RandomTargets(12, gz.size(), 22);
  // Regular checkpoints 8 MiB of output apart: a read spilling past a target's span reads megabytes.
  BuildIndex(gz, targets, dir / "targets.gzidx", 3584, 24 << 20, 8 << 20);
  const auto boundaries = BlockBoundaries(gz);
  DecoderOptions options;
  options.index_path = dir / "targets.gzidx";
  for (const auto& [first, second] : targets) {
    // The output the target's last compressed bytes make: before the first block boundary at or after its end.
    auto b = std::lower_bound(boundaries.begin(), boundaries.end(), std::pair<uint64_t, uint64_t>{second, 0});
    if (b == boundaries.end() || b == boundaries.begin()) continue;
    const uint64_t at = std::min<uint64_t>(b->second - 1, data.size() - 1);
    auto counted = std::make_shared<ocifs::testing::CountingSource>(std::make_shared<MemorySource>(gz));
    auto loaded = Open(counted, options);
    REQUIRE(loaded->verifies_reads());
    const uint64_t before = counted->bytes.load();
    std::vector<uint8_t> buf(1);
    REQUIRE(loaded->ReadAt(at, buf).ok());
    CHECK(buf[0] == data[at]);
    INFO("target " << first << ".." << second << ", read at " << at);
    // The target's own bytes (a merged neighbour's too), one checksum block and a deflate block on either side.
    CHECK(counted->bytes.load() - before < (second - first) + kGap + 4 * kMaxBlock);
  }
}
