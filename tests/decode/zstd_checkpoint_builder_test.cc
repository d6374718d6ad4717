#include "decode/zstd_checkpoint_builder.h"

#include <zstd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>

#include "base/memory_source.h"
#include "decode/zstd_checkpoint_source.h"
#include "testing/zstd_test_data.h"

using namespace ocifs;
using ocifs::testing::CompressZstdFrame;
using ocifs::testing::MakeZstdTestData;
using ocifs::testing::ZstdDataKind;
using ocifs::testing::ZstdTestOptions;

namespace {

struct Built {
  std::shared_ptr<MemorySource> blob;
  ZstdCheckpointIndex index;
  ZstdCheckpointStats stats;
};

Built Build(std::vector<uint8_t> compressed, uint64_t spacing = 128 << 10) {
  Built b;
  b.blob = std::make_shared<MemorySource>(std::move(compressed), "test blob");
  ZstdCheckpointOptions o;
  o.spacing = spacing;
  auto index = BuildZstdCheckpoints(*b.blob, o, &b.stats);
  INFO(index.status().ToString());
  REQUIRE(index.ok());
  b.index = std::move(index).value();
  return b;
}

// Every segment read alone (a fresh source each time, so each decodes from
// its own checkpoint) and random reads give the original bytes.
void CheckServes(const Built& b, const std::vector<uint8_t>& data) {
  REQUIRE(b.index.decoded_size == data.size());
  for (size_t i = 0; i < b.index.checkpoints.size(); ++i) {
    ZstdCheckpointSource source(b.blob, b.index, 4 << 20);
    const uint64_t from = b.index.checkpoints[i].out, to = b.index.SegmentEnd(i);
    std::vector<uint8_t> got(to - from);
    auto n = source.ReadAt(from, got);
    INFO("segment " << i << " kind " << static_cast<int>(b.index.checkpoints[i].kind) << ": "
                    << n.status().ToString());
    REQUIRE(n.ok());
    REQUIRE(*n == got.size());
    REQUIRE(std::equal(got.begin(), got.end(), data.begin() + static_cast<ptrdiff_t>(from)));
  }
  ZstdCheckpointSource source(b.blob, b.index, 2 << 20);
  std::mt19937 rng(7);
  for (int k = 0; k < 40; ++k) {
    const uint64_t at = rng() % data.size();
    std::vector<uint8_t> got(1 + rng() % 300000);
    auto n = source.ReadAt(at, got);
    REQUIRE(n.ok());
    REQUIRE(*n == std::min<uint64_t>(got.size(), data.size() - at));
    REQUIRE(std::equal(got.begin(), got.begin() + static_cast<ptrdiff_t>(*n), data.begin() + static_cast<ptrdiff_t>(at)));
  }
}

}  // namespace

TEST_CASE("zstd checkpoints restore every segment of single frames made at levels 1, 3 and 19") {
  struct Case {
    ZstdDataKind kind;
    size_t size;
    ZstdTestOptions options;
  };
  const Case cases[] = {
      {ZstdDataKind::kText, 3 << 20, {.level = 1}},
      {ZstdDataKind::kText, 3 << 20, {.level = 3, .content_size = false, .checksum = true}},
      {ZstdDataKind::kFarRepeats, 3 << 20, {.level = 3}},
      {ZstdDataKind::kRandom, 2 << 20, {.level = 3, .checksum = true}},
      {ZstdDataKind::kZeros, 4 << 20, {.level = 3, .content_size = false}},
      {ZstdDataKind::kText, 1 << 20, {.level = 19, .checksum = true}},
      {ZstdDataKind::kFarRepeats, 1 << 20, {.level = 19, .content_size = false}},
  };
  uint64_t treeless = 0, repeat = 0, kept = 0;
  for (const Case& c : cases) {
    const std::vector<uint8_t> data = MakeZstdTestData(c.kind, c.size, 11);
    Built b = Build(CompressZstdFrame(data, c.options));
    treeless += b.stats.first_treeless;
    repeat += b.stats.first_repeat;
    kept += b.stats.checkpoints;
    INFO("kind " << static_cast<int>(c.kind) << " level " << c.options.level << " checkpoints "
                 << b.stats.checkpoints << " dropped " << b.stats.dropped_verify << "+" << b.stats.dropped_reach);
    CHECK(b.stats.frames == 1);
    CHECK(b.stats.checkpoints >= c.size / (256 << 10));
    CHECK(b.stats.dropped_verify == 0);
    CheckServes(b, data);
  }
  // libzstd takes a dictionary's tables for blocks that reuse them.
  INFO(kept << " checkpoints: first block treeless " << treeless << ", with a repeat table " << repeat);
  CHECK(treeless > 0);
  CHECK(repeat > 0);
}

TEST_CASE("zstd checkpoints follow long windows and long distance matching") {
  const std::vector<uint8_t> data = MakeZstdTestData(ZstdDataKind::kFarRepeats, 6 << 20, 5);
  for (int window_log : {24, 27}) {
    // Streamed without a pledged size, so libzstd keeps the window asked for.
    Built b = Build(CompressZstdFrame(data, {.level = 3, .content_size = false, .window_log = window_log,
                                             .long_distance = true}),
                    512 << 10);
    INFO("window log " << window_log << " checkpoints " << b.stats.checkpoints);
    CHECK(b.index.window_log == static_cast<uint32_t>(window_log));
    CHECK(b.stats.checkpoints >= 4);
    CheckServes(b, data);
  }
}

TEST_CASE("zstd checkpoints: a checkpoint that would reach too far back is left to the frame start") {
  const std::vector<uint8_t> data = MakeZstdTestData(ZstdDataKind::kFarRepeats, 3 << 20, 9);
  auto blob = std::make_shared<MemorySource>(
      CompressZstdFrame(data, {.level = 3, .window_log = 24, .long_distance = true}), "test blob");
  ZstdCheckpointOptions o;
  o.spacing = 128 << 10;
  o.max_reach = 64 << 10;
  ZstdCheckpointStats stats;
  auto index = BuildZstdCheckpoints(*blob, o, &stats);
  REQUIRE(index.ok());
  CHECK(stats.dropped_reach > 0);
  CheckServes(Built{blob, std::move(index).value(), stats}, data);
}

TEST_CASE("zstd checkpoints span concatenated frames, skippable frames and empty frames") {
  const std::vector<uint8_t> a = MakeZstdTestData(ZstdDataKind::kText, 700 << 10, 1);
  const std::vector<uint8_t> c = MakeZstdTestData(ZstdDataKind::kFarRepeats, 900 << 10, 2);
  std::vector<uint8_t> blob = CompressZstdFrame(a, {.level = 3});
  const std::vector<uint8_t> skippable = {0x50, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 1, 2, 3};
  blob.insert(blob.end(), skippable.begin(), skippable.end());
  const std::vector<uint8_t> empty = CompressZstdFrame(std::span<const uint8_t>(), {.level = 3, .checksum = true});
  blob.insert(blob.end(), empty.begin(), empty.end());
  const std::vector<uint8_t> cz = CompressZstdFrame(c, {.level = 19, .content_size = false, .checksum = true});
  blob.insert(blob.end(), cz.begin(), cz.end());
  std::vector<uint8_t> data = a;
  data.insert(data.end(), c.begin(), c.end());
  Built b = Build(std::move(blob));
  CHECK(b.stats.frames == 3);
  CHECK(b.stats.dropped_verify == 0);
  CheckServes(b, data);
}

TEST_CASE("zstd checkpoints: target ranges get a checkpoint at their start") {
  const std::vector<uint8_t> data = MakeZstdTestData(ZstdDataKind::kText, 2 << 20, 3);
  auto blob = std::make_shared<MemorySource>(CompressZstdFrame(data, {.level = 3}), "test blob");
  ZstdCheckpointOptions o;
  o.spacing = 64 << 20;
  const uint64_t target = blob->size() / 2;
  o.targets = {{target, target + 1000}};
  ZstdCheckpointStats stats;
  auto index = BuildZstdCheckpoints(*blob, o, &stats);
  REQUIRE(index.ok());
  REQUIRE(index->checkpoints.size() == 3);
  CHECK(index->checkpoints[1].in <= target);
  CHECK(index->checkpoints[2].in >= target + 1000);
  CHECK(index->checkpoints[2].in - index->checkpoints[1].in < 200 << 10);
}

TEST_CASE("zstd checkpoint build rejects a truncated or damaged blob with kCorrupt") {
  const std::vector<uint8_t> data = MakeZstdTestData(ZstdDataKind::kText, 1 << 20, 4);
  std::vector<uint8_t> z = CompressZstdFrame(data, {.level = 3});
  MemorySource truncated(std::vector<uint8_t>(z.begin(), z.end() - 100));
  auto r = BuildZstdCheckpoints(truncated, {});
  REQUIRE(!r.ok());
  CHECK(r.status().code() == Code::kCorrupt);
  MemorySource garbage(std::vector<uint8_t>(1000, 0x55));
  CHECK(BuildZstdCheckpoints(garbage, {}).status().code() == Code::kCorrupt);
}

// Figures for docs and reviews, not a check: `decode_test "[.bench]" -s`;
// ZCKPT_DICT_LEVEL, ZCKPT_SPACING set the options, ZCKPT_FILE the data.
TEST_CASE("bench: size and build time of a checkpoint index over zstd, by kind of data", "[.bench]") {
  const std::pair<ZstdDataKind, const char*> kinds[] = {{ZstdDataKind::kRandom, "random"},
                                                        {ZstdDataKind::kText, "text"},
                                                        {ZstdDataKind::kZeros, "zeros"},
                                                        {ZstdDataKind::kFarRepeats, "far repeats"}};
  // ZCKPT_FILE=path: that file's bytes instead (a real disk image, say).
  const char* file = std::getenv("ZCKPT_FILE");
  std::vector<uint8_t> file_bytes;
  if (file) {
    std::ifstream in(file, std::ios::binary);
    file_bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  for (int level : {3, 19}) {
    for (const auto& [kind, name] : kinds) {
      if (file && kind != ZstdDataKind::kRandom) continue;
      const std::vector<uint8_t> data = file ? file_bytes : MakeZstdTestData(kind, 8 << 20, 21);
      auto blob = std::make_shared<MemorySource>(CompressZstdFrame(data, {.level = level, .checksum = true}));
      ZstdCheckpointStats stats;
      const auto t0 = std::chrono::steady_clock::now();
      ZstdCheckpointOptions o;
      if (const char* e = std::getenv("ZCKPT_DICT_LEVEL")) o.dict_level = std::atoi(e);
      if (const char* e = std::getenv("ZCKPT_SPACING")) o.spacing = std::strtoull(e, nullptr, 10);
      auto bytes = BuildZstdCheckpointIndex(*blob, o, &stats);
      const auto t1 = std::chrono::steady_clock::now();
      REQUIRE(bytes.ok());
      // Cold 4 KiB reads: a fresh source each, so each decodes its segment.
      auto index = ZstdCheckpointIndex::Parse({reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()});
      REQUIRE(index.ok());
      std::mt19937 rng(1);
      const auto t2 = std::chrono::steady_clock::now();
      for (int k = 0; k < 20; ++k) {
        ZstdCheckpointSource source(blob, *index, 4 << 20);
        std::vector<uint8_t> got(4096);
        REQUIRE(source.ReadAt(rng() % (data.size() - 4096), got).ok());
      }
      const auto t3 = std::chrono::steady_clock::now();
      auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
      WARN("level " << level << " " << (file ? file : name) << ": " << data.size() << " B -> " << blob->size() << " B compressed; index "
                    << bytes->size() << " B (" << stats.checkpoints << " checkpoints, dictionaries "
                    << stats.dict_bytes << " B raw; first blocks treeless " << stats.first_treeless
                    << ", repeat " << stats.first_repeat << "), dropped " << stats.dropped_verify << " by the check, "
                    << stats.dropped_reach << " by reach; build " << ms(t1 - t0) << " ms; cold 4 KiB read "
                    << ms(t3 - t2) / 20 << " ms");
    }
  }
}

TEST_CASE("zstd checkpoints: the dictionaries stay within their budget, spread over the blob") {
  const std::vector<uint8_t> data = MakeZstdTestData(ZstdDataKind::kText, 4 << 20, 12);
  auto blob = std::make_shared<MemorySource>(CompressZstdFrame(data, {.level = 19, .content_size = false}));
  ZstdCheckpointOptions o;
  o.spacing = 256 << 10;
  ZstdCheckpointStats all;
  REQUIRE(BuildZstdCheckpoints(*blob, o, &all).ok());
  o.max_dict_bytes = all.zdict_bytes / 4;
  ZstdCheckpointStats stats;
  auto index = BuildZstdCheckpoints(*blob, o, &stats);
  REQUIRE(index.ok());
  INFO("all " << all.zdict_bytes << " B in " << all.checkpoints << ", budget: " << stats.zdict_bytes << " B in "
              << stats.checkpoints);
  CHECK(stats.skipped_budget > 0);
  CHECK(stats.checkpoints >= 3);
  // The last segment's dictionary may go over: it is made when the blob ends.
  CHECK(stats.zdict_bytes <= o.max_dict_bytes * 3 / 2);
  CHECK(index->checkpoints.back().out > data.size() / 2);
  CheckServes(Built{blob, std::move(index).value(), stats}, data);
}

TEST_CASE("zstd checkpoint build over damaged blobs fails cleanly or builds an index that reads true") {
  // The pass parses what a registry sent: flipped bits anywhere must give an
  // error, or (a byte libzstd also accepts) an index whose reads never return
  // bytes other than libzstd's.
  const std::vector<uint8_t> data = MakeZstdTestData(ZstdDataKind::kText, 300 << 10, 13);
  const std::vector<uint8_t> z = CompressZstdFrame(data, {.level = 19, .checksum = false});
  std::mt19937 rng(31);
  int failed = 0;
  for (int i = 0; i < 60; ++i) {
    std::vector<uint8_t> bad = z;
    for (int k = 0; k < 1 + i % 3; ++k) bad[rng() % bad.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    auto blob = std::make_shared<MemorySource>(bad);
    ZstdCheckpointOptions o;
    o.spacing = 64 << 10;
    auto index = BuildZstdCheckpoints(*blob, o);
    if (!index.ok()) {
      ++failed;
      CHECK((index.status().code() == Code::kCorrupt || index.status().code() == Code::kUnsupported));
      continue;
    }
    std::vector<uint8_t> want(ZSTD_getFrameContentSize(bad.data(), bad.size()));
    REQUIRE(ZSTD_decompress(want.data(), want.size(), bad.data(), bad.size()) == want.size());
    CheckServes(Built{blob, std::move(index).value(), {}}, want);
  }
  CHECK(failed > 30);
}

// A blob some other tool wrote (ZCKPT_BLOB=path: a layer pushed by buildah or
// skopeo, whose encoder is not libzstd's): the index builds, and reading it
// all through the checkpoints gives what libzstd streams.
TEST_CASE("bench: a checkpoint index over a zstd blob from elsewhere", "[.bench]") {
  const char* path = std::getenv("ZCKPT_BLOB");
  if (!path) return;
  std::ifstream in(path, std::ios::binary);
  auto blob = std::make_shared<MemorySource>(
      std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
  std::vector<uint8_t> want;
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ZSTD_inBuffer ib{blob->bytes().data(), blob->bytes().size(), 0};
  std::vector<uint8_t> chunk(1 << 20);
  while (ib.pos < ib.size) {
    ZSTD_outBuffer ob{chunk.data(), chunk.size(), 0};
    REQUIRE(!ZSTD_isError(ZSTD_decompressStream(d, &ob, &ib)));
    want.insert(want.end(), chunk.begin(), chunk.begin() + static_cast<ptrdiff_t>(ob.pos));
  }
  ZSTD_freeDCtx(d);
  ZstdCheckpointStats stats;
  const auto t0 = std::chrono::steady_clock::now();
  auto index = BuildZstdCheckpoints(*blob, {}, &stats);
  const auto t1 = std::chrono::steady_clock::now();
  INFO(index.status().ToString());
  REQUIRE(index.ok());
  const double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  WARN(path << ": " << want.size() << " B -> " << blob->size() << " B, window log " << index->window_log << "; "
            << stats.frames << " frames, " << stats.checkpoints << " checkpoints (first blocks treeless "
            << stats.first_treeless << ", repeat " << stats.first_repeat << "), dropped " << stats.dropped_verify
            << " by the check, " << stats.dropped_reach << " by reach; index " << index->Serialize().size()
            << " B; build " << ms << " ms");
  CheckServes(Built{blob, std::move(index).value(), stats}, want);
}
