#include "decode/gzip_block_checkpoints.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <memory>
#include <random>

#include "base/crc32.h"
#include "base/memory_source.h"
#include "decode/gzip_index_v4.h"
#include "decode/gzip_inflate.h"
#include "testing/gzip_indexed.h"
#include "testing/layer_test_data.h"

using namespace ocifs;

namespace {

constexpr uint32_t kInsideBlockTestBlock = 16 << 10;

// Random bytes (coded in dynamic blocks of literals by gzip -6) with a text run
// (matches reaching back across the checksum blocks), gzipped in one member,
// indexed every MiB with block checksums as accelerate's.
struct InsideBlockLayer {
  std::vector<uint8_t> data;
  std::unique_ptr<MemorySource> blob;
  GzipIndex index;
  explicit InsideBlockLayer(std::vector<uint8_t> d) : data(std::move(d)) {
    blob = std::make_unique<MemorySource>(testing::GzipMember(data), "layer");
    index = testing::IndexedGzip(*blob, data.size(), 1 << 20);
    index.block_size = kInsideBlockTestBlock;
    for (size_t at = 0; at < data.size(); at += kInsideBlockTestBlock) {
      index.block_crcs.push_back(
          Crc32(0, std::span<const uint8_t>(data).subspan(at, std::min<size_t>(kInsideBlockTestBlock, data.size() - at))));
    }
  }
};

std::vector<uint8_t> InsideBlockData() {
  std::mt19937 rng(5);
  std::vector<uint8_t> data(3 << 20);
  // 200 byte values: no matches, but Huffman codes shorter than 8 bits, so
  // gzip codes them in dynamic blocks (as a disk's compressed clusters), not stored.
  for (auto& b : data) b = static_cast<uint8_t>(rng() % 200);
  const std::vector<uint8_t> text = testing::MakeTextData(768 << 10, 7);
  std::copy(text.begin(), text.end(), data.begin() + (1 << 20));
  return data;
}

// Targets: compressed ranges in the random part, the text part and near the end.
std::vector<GzipTargetPlacer::Point> InsideBlockTargets(uint64_t blob_size) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges = {
      {200000, 230000}, {500000, 700000}, {1100000, 1120000}, {blob_size - 90000, blob_size - 70000}};
  return GzipTargetPlacer::Plan(ranges, 32 << 10, 3584, 256 << 10);
}

void RequireExactFromEveryCheckpoint(const InsideBlockLayer& l, const GzipIndex& index) {
  for (size_t k = 1; k < index.checkpoints.size(); ++k) {
    REQUIRE(index.checkpoints[k - 1].out < index.checkpoints[k].out);
    REQUIRE(index.checkpoints[k - 1].in <= index.checkpoints[k].in);
  }
  for (const GzipCheckpoint& cp : index.checkpoints) {
    const size_t length = static_cast<size_t>(std::min<uint64_t>(l.data.size() - cp.out, 70000));
    auto got = InflateFromCheckpoint(*l.blob, cp, length, 0, "layer");
    INFO("checkpoint at " << cp.out << (cp.inside_block() ? " (inside a block)" : ""));
    REQUIRE(got.ok());
    REQUIRE(got->size() == length);
    REQUIRE(std::equal(got->begin(), got->end(), l.data.begin() + static_cast<ptrdiff_t>(cp.out)));
  }
}

}  // namespace

TEST_CASE("CopyBits packs a bit range from bit 0") {
  const std::vector<uint8_t> bytes = {0b10110100, 0b01101011, 0xff};
  CHECK(CopyBits(bytes, 2, 10) == std::vector<uint8_t>{0b11101101});
  CHECK(CopyBits(bytes, 3, 6) == std::vector<uint8_t>{0b110});
  CHECK(CopyBits(bytes, 0, 24) == bytes);
  CHECK(CopyBits(bytes, 7, 17) == std::vector<uint8_t>{0b11010111, 0b10});
}

TEST_CASE("checkpoints inside deflate blocks sit at the checksum blocks around targets and restart exactly") {
  InsideBlockLayer l(InsideBlockData());
  const size_t before = l.index.checkpoints.size();
  BlockCheckpointStats stats;
  REQUIRE(AddBlockCheckpoints(*l.blob, l.index, InsideBlockTargets(l.blob->size()), "layer", {}, &stats).ok());
  CHECK(stats.wanted >= 8);
  CHECK(stats.added >= 6);
  CHECK(stats.dropped_verify == 0);
  CHECK(l.index.checkpoints.size() == before + stats.added);
  size_t inside = 0;
  for (const GzipCheckpoint& cp : l.index.checkpoints) {
    if (!cp.inside_block()) continue;
    ++inside;
    // At a checksum-block boundary, or a match's start just before it.
    const uint64_t boundary = (cp.out + kInsideBlockTestBlock - 1) / kInsideBlockTestBlock * kInsideBlockTestBlock;
    CHECK(boundary - cp.out <= 258);
    CHECK(cp.header_bits >= 3);
    CHECK(cp.block_header.size() == cp.HeaderBytes());
  }
  CHECK(inside >= 6);
  RequireExactFromEveryCheckpoint(l, l.index);

  SECTION("through a table-first index (version 5), whole or read lazily") {
    auto bytes = GzipIndexV4::Serialize(l.index);
    REQUIRE(bytes.ok());
    auto parsed = GzipIndexV4::Parse(*bytes, "test index");
    REQUIRE(parsed.ok());
    REQUIRE(parsed->checkpoints.size() == l.index.checkpoints.size());
    RequireExactFromEveryCheckpoint(l, *parsed);
    auto blob = std::make_shared<MemorySource>(*bytes, "index blob");
    auto lazy = GzipIndexV4::Open(blob, "test index");
    REQUIRE(lazy.ok());
    size_t lazy_inside = 0;
    for (const GzipCheckpoint& cp : lazy->checkpoints) lazy_inside += cp.inside_block() ? 1 : 0;
    CHECK(lazy_inside == inside);
    RequireExactFromEveryCheckpoint(l, *lazy);
  }
  SECTION("an index without them stays version 4") {
    std::erase_if(l.index.checkpoints, [](const GzipCheckpoint& cp) { return cp.inside_block(); });
    auto bytes = GzipIndexV4::Serialize(l.index);
    REQUIRE(bytes.ok());
    CHECK((*bytes)[8] == 4);
  }
  SECTION("the version 3 file refuses them, naming why") {
    auto bytes = l.index.Serialize();
    REQUIRE_FALSE(bytes.ok());
    CHECK(bytes.status().message().find("version 5") != std::string::npos);
  }
}

TEST_CASE("a block header that is wrong fails the restart or makes other bytes, which the checksums catch") {
  InsideBlockLayer l(InsideBlockData());
  REQUIRE(AddBlockCheckpoints(*l.blob, l.index, InsideBlockTargets(l.blob->size()), "layer").ok());
  auto it = std::find_if(l.index.checkpoints.begin(), l.index.checkpoints.end(),
                         [](const GzipCheckpoint& cp) { return cp.inside_block() && cp.header_bits > 40; });
  REQUIRE(it != l.index.checkpoints.end());
  GzipCheckpoint cp = *it;
  cp.block_header[2] ^= 0x10;
  auto got = InflateFromCheckpoint(*l.blob, cp, 20000, 0, "layer");
  if (got.ok()) {
    CHECK_FALSE(std::equal(got->begin(), got->end(), l.data.begin() + static_cast<ptrdiff_t>(cp.out)));
  } else {
    CHECK(got.status().code() == Code::kCorrupt);
  }
  cp.block_header.pop_back();  // shorter than its bit count
  CHECK(InflateFromCheckpoint(*l.blob, cp, 20000, 0, "layer").status().code() == Code::kCorrupt);
}

TEST_CASE("checkpoints inside blocks are not added where the index has one close enough") {
  InsideBlockLayer l(InsideBlockData());
  BlockCheckpointOptions options;
  options.min_gain = uint64_t{1} << 40;
  BlockCheckpointStats stats;
  const size_t before = l.index.checkpoints.size();
  REQUIRE(AddBlockCheckpoints(*l.blob, l.index, InsideBlockTargets(l.blob->size()), "layer", options, &stats).ok());
  CHECK(stats.added == 0);
  CHECK(stats.near_existing + stats.in_stored == stats.wanted);
  CHECK(l.index.checkpoints.size() == before);
}

TEST_CASE("checkpoints inside blocks for another blob's index: an error, the index unchanged") {
  InsideBlockLayer l(InsideBlockData());
  l.index.decompressed_size -= 1;
  const size_t before = l.index.checkpoints.size();
  Status st = AddBlockCheckpoints(*l.blob, l.index, InsideBlockTargets(l.blob->size()), "other layer");
  REQUIRE_FALSE(st.ok());
  CHECK(st.ToString().find("other layer") != std::string::npos);
  CHECK(l.index.checkpoints.size() == before);
}
