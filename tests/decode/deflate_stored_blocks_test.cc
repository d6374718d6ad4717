#include "decode/deflate_stored_blocks.h"

#include <catch2/catch.hpp>

#include <random>

#include "base/memory_source.h"
#include "testing/layer_test_data.h"
#include "testing/zstd_test_data.h"

using namespace ocifs;
using ocifs::testing::GzipMember;

namespace {

// Random stretches of `random` bytes between `text` bytes of text.
std::vector<uint8_t> StoredBlocksData(size_t pieces, size_t random, size_t text, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> data;
  for (size_t i = 0; i < pieces; ++i) {
    for (size_t k = 0; k < random; ++k) data.push_back(static_cast<uint8_t>(rng()));
    const auto t = ocifs::testing::MakeZstdTestData(ocifs::testing::ZstdDataKind::kText, text, seed + 1 + i);
    data.insert(data.end(), t.begin(), t.end());
  }
  return data;
}

}  // namespace

TEST_CASE("stored blocks: a gzip blob's stored blocks are listed, their bytes the decoded bytes") {
  const std::vector<uint8_t> data = StoredBlocksData(6, 200 << 10, 50 << 10, 3);
  // Two members: the second's blocks are at their offsets in the blob and the output.
  const size_t half = data.size() / 2;
  std::vector<uint8_t> blob = GzipMember(std::span(data).first(half));
  const std::vector<uint8_t> second = GzipMember(std::span(data).subspan(half));
  blob.insert(blob.end(), second.begin(), second.end());
  MemorySource source(blob, "gz");
  auto table = FindStoredBlocks(source);
  REQUIRE(table.ok());
  CHECK(table->blob_size() == blob.size());
  CHECK(table->decoded_size() == data.size());
  CHECK(table->raw_bytes() >= 6 * (150u << 10));  // most of the random bytes
  CHECK(table->raw_bytes() < 6 * (200u << 10) + 1);
  bool in_second = false;
  for (size_t s = 0; s < table->spans().size(); ++s) {
    const RawSpan& r = table->spans()[s];
    INFO("span " << s << " at " << r.in);
    REQUIRE(r.size >= 4096);
    REQUIRE(std::equal(blob.begin() + static_cast<ptrdiff_t>(r.in), blob.begin() + static_cast<ptrdiff_t>(r.in + r.size),
                       data.begin() + static_cast<ptrdiff_t>(r.out)));
    CHECK(table->Matches(s, r.in, std::span<const uint8_t>(blob.data() + r.in, r.size)));
    in_second = in_second || r.out >= half;
  }
  CHECK(in_second);
}

TEST_CASE("stored blocks: compressible data has none, and a damaged blob is refused") {
  const auto text = ocifs::testing::MakeZstdTestData(ocifs::testing::ZstdDataKind::kText, 1 << 20, 9);
  std::vector<uint8_t> blob = GzipMember(text);
  auto none = FindStoredBlocks(MemorySource(blob, "gz"));
  REQUIRE(none.ok());
  CHECK(none->spans().empty());
  auto truncated = FindStoredBlocks(MemorySource(std::vector<uint8_t>(blob.begin(), blob.end() - 100), "gz"));
  REQUIRE_FALSE(truncated.ok());
  CHECK(truncated.status().code() == Code::kCorrupt);
  const std::vector<uint8_t> random = StoredBlocksData(1, 100 << 10, 0, 4);
  std::vector<uint8_t> stored = GzipMember(random);
  stored[stored.size() / 2] ^= 0x55;  // inside a stored block: the member's CRC-32 no longer matches
  auto bad = FindStoredBlocks(MemorySource(stored, "gz"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kCorrupt);
}
