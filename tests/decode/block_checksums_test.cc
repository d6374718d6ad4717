#include "decode/block_checksums.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <random>
#include <thread>
#include <vector>

using namespace ocifs;

namespace {

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng() % 7);  // compressible-ish, not all distinct
  return v;
}

// The CRC-32 of each `block` bytes of `data`, computed whole, one block at a time.
std::vector<uint32_t> BlockCrcs(const std::vector<uint8_t>& data, size_t block) {
  std::vector<uint32_t> crcs;
  for (size_t at = 0; at < data.size(); at += block) {
    const size_t n = std::min(block, data.size() - at);
    crcs.push_back(static_cast<uint32_t>(crc32(0, data.data() + at, static_cast<uInt>(n))));
  }
  return crcs;
}

}  // namespace

TEST_CASE("BlockCrcBuilder: the CRC of each block, whatever the pieces the stream comes in") {
  for (const size_t size : {size_t{0}, size_t{1}, size_t{4096}, size_t{4097}, size_t{3 * 4096}, size_t{100000}}) {
    const std::vector<uint8_t> data = RandomBytes(size, static_cast<uint32_t>(size));
    std::mt19937 rng(5);
    BlockCrcBuilder builder(4096);
    for (size_t at = 0; at < data.size();) {
      const size_t n = std::min<size_t>(data.size() - at, rng() % 9000);
      builder.Feed(std::span(data).subspan(at, n));
      at += n;
    }
    INFO("size " << size);
    CHECK(builder.Finish() == BlockCrcs(data, 4096));
  }
}

TEST_CASE("BlockChecksums widens a read to its unverified edge blocks and checks only whole blocks") {
  const std::vector<uint8_t> data = RandomBytes(10 * 4096 + 100, 1);  // 11 blocks, the last 100 bytes
  BlockChecksums checks(4096, BlockCrcs(data, 4096), data.size(), "blob-x");
  CHECK(checks.Widen(5000, 9000) == std::pair<uint64_t, uint64_t>(4096, 12288));
  CHECK(checks.Widen(4096, 8192) == std::pair<uint64_t, uint64_t>(4096, 8192));
  CHECK(checks.Widen(40970, 41000) == std::pair<uint64_t, uint64_t>(40960, data.size()));  // the short last block
  CHECK(checks.Widen(100, 100000) == std::pair<uint64_t, uint64_t>(0, data.size()));
  CHECK(checks.WholeBlocks(5000, 20000) == std::pair<uint64_t, uint64_t>(8192, 16384));
  CHECK(checks.WholeBlocks(5000, 6000).first == checks.WholeBlocks(5000, 6000).second);  // none
  CHECK(checks.WholeBlocks(36000, data.size()) == std::pair<uint64_t, uint64_t>(36864, data.size()));

  // Check sees blocks 2 and 3 whole in [5000, 20000); 1 and 4 are partial.
  REQUIRE(checks.Check(5000, std::span(data).subspan(5000, 15000)).ok());
  CHECK_FALSE(checks.Verified(1));
  CHECK(checks.Verified(2));
  CHECK(checks.Verified(3));
  CHECK_FALSE(checks.Verified(4));
  // A verified edge block is not widened to.
  CHECK(checks.Widen(9000, 15000) == std::pair<uint64_t, uint64_t>(9000, 15000));
  CHECK(checks.Widen(9000, 17000) == std::pair<uint64_t, uint64_t>(9000, 20480));
  // The short last block.
  REQUIRE(checks.Check(40960, std::span(data).subspan(40960)).ok());
  CHECK(checks.Verified(10));
  CHECK_FALSE(checks.Verified(11));  // past the end
}

TEST_CASE("BlockChecksums: a block that does not match is kDataLoss naming the blob, the block and its offset") {
  std::vector<uint8_t> data = RandomBytes(20 * 65536, 2);
  BlockChecksums checks(65536, BlockCrcs(data, 65536), data.size(), "blob-x");
  data[17 * 65536 + 5] ^= 1;
  Status st = checks.Check(0, data);
  REQUIRE(st.code() == Code::kDataLoss);
  CHECK(st.message() == "gzip index of blob-x is wrong: block 17 at decompressed offset 1114112 does not match its checksum");
  CHECK(checks.Verified(16));
  CHECK_FALSE(checks.Verified(17));
  CHECK_FALSE(checks.Verified(18));  // checking stops at the first mismatch
  // Once verified, a block is not checked again (inflating is deterministic).
  CHECK(checks.Check(16 * 65536, std::span(data).subspan(16 * 65536, 65536)).ok());
  data[16 * 65536] ^= 1;
  CHECK(checks.Check(16 * 65536, std::span(data).subspan(16 * 65536, 65536)).ok());
}

TEST_CASE("BlockChecksums: threads verifying the same blocks at once agree") {
  const std::vector<uint8_t> data = RandomBytes(300 * 4096, 3);
  BlockChecksums checks(4096, BlockCrcs(data, 4096), data.size(), "blob-y");
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t));
      for (int i = 0; i < 200; ++i) {
        const size_t from = rng() % data.size(), n = std::min<size_t>(data.size() - from, rng() % 50000);
        const auto [wide_from, wide_to] = checks.Widen(from, from + n);
        if (!checks.Check(wide_from, std::span(data).subspan(wide_from, wide_to - wide_from)).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
}
