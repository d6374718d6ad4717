#include "disk/stored_chunk_source.h"

#include <catch2/catch.hpp>
#include <random>

#include "base/memory_source.h"
#include "testing/counting_source.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

constexpr uint32_t kChunk = 4096;

// Random bytes with all-zero chunks 2, 3 and 9 (and a short last chunk).
std::vector<uint8_t> Disk() {
  std::vector<uint8_t> data(12 * kChunk + 100);
  std::mt19937 rng(7);
  for (auto& b : data) b = static_cast<uint8_t>(rng() | 1);
  for (uint64_t zero : {2, 3, 9}) std::fill_n(data.begin() + static_cast<long>(zero * kChunk), kChunk, 0);
  return data;
}

std::vector<uint8_t> Read(const ByteSource& src, uint64_t offset, size_t length) {
  std::vector<uint8_t> buf(length);
  auto n = src.ReadAt(offset, buf);
  REQUIRE(n.ok());
  buf.resize(*n);
  return buf;
}

}  // namespace

TEST_CASE("stored chunk source reads equal its inner at any offset and length, and keeps what it read") {
  const std::vector<uint8_t> disk = Disk();
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(disk));
  auto store = MakeMemoryDecodedStore(kChunk);
  StoredChunkSource src(counting, store);
  REQUIRE(src.size() == disk.size());
  std::mt19937 rng(11);
  for (int i = 0; i < 300; ++i) {
    const uint64_t offset = rng() % disk.size();
    const size_t length = 1 + rng() % (3 * kChunk);
    const auto got = Read(src, offset, length);
    const size_t n = std::min<size_t>(length, disk.size() - offset);
    REQUIRE(got.size() == n);
    REQUIRE(std::equal(got.begin(), got.end(), disk.begin() + static_cast<long>(offset)));
  }
  CHECK(Read(src, disk.size(), 10).empty());
  // Every chunk is now stored, except the zero ones.
  for (uint64_t i = 0; i < 13; ++i) CHECK(store->Contains(i) == (i != 2 && i != 3 && i != 9));
  // A whole read again costs inner nothing: stored chunks and known zeros.
  const int reads = counting->reads;
  CHECK(Read(src, 0, disk.size()) == disk);
  CHECK(counting->reads == reads);
}

TEST_CASE("stored chunk source over a store filled before reads it, zero chunks aside, without its inner") {
  const std::vector<uint8_t> disk = Disk();
  auto store = MakeMemoryDecodedStore(kChunk);
  {
    StoredChunkSource first(std::make_shared<MemorySource>(disk), store);
    CHECK(Read(first, 0, disk.size()) == disk);
  }
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(disk));
  StoredChunkSource second(counting, store);  // the next mount: the zero set starts empty
  CHECK(Read(second, 0, disk.size()) == disk);
  CHECK(counting->reads == 2);                      // chunks 2-3 (one run) and 9
  CHECK(counting->bytes == 3 * kChunk);
  CHECK(Read(second, 2 * kChunk + 5, 3 * kChunk) == std::vector<uint8_t>(disk.begin() + 2 * kChunk + 5,
                                                                            disk.begin() + 5 * kChunk + 5));
  CHECK(counting->reads == 2);
}

TEST_CASE("stored chunk source reads a run of chunks it lacks with one inner read") {
  const std::vector<uint8_t> disk = Disk();
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(disk));
  auto store = MakeMemoryDecodedStore(kChunk);
  StoredChunkSource src(counting, store);
  CHECK(Read(src, 5 * kChunk + 1, kChunk) == std::vector<uint8_t>(disk.begin() + 5 * kChunk + 1,
                                                                   disk.begin() + 6 * kChunk + 1));
  CHECK(counting->reads == 1);  // chunks 5 and 6, whole
  CHECK(counting->bytes == 2 * kChunk);
  // 4 .. 8 with 5 and 6 stored: 4, then 7-8.
  CHECK(Read(src, 4 * kChunk, 5 * kChunk) == std::vector<uint8_t>(disk.begin() + 4 * kChunk,
                                                                   disk.begin() + 9 * kChunk));
  CHECK(counting->reads == 3);
  CHECK(counting->bytes == 5 * kChunk);
}

TEST_CASE("stored chunk source passes its inner's errors on and keeps nothing of a failed read") {
  const std::vector<uint8_t> disk = Disk();
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(disk));
  auto store = MakeMemoryDecodedStore(kChunk);
  StoredChunkSource src(counting, store);
  counting->fail = true;
  std::vector<uint8_t> buf(kChunk);
  auto n = src.ReadAt(0, buf);
  REQUIRE_FALSE(n.ok());
  CHECK(n.status().code() == Code::kUnavailable);
  CHECK_FALSE(store->Contains(0));
  counting->fail = false;
  CHECK(Read(src, 0, kChunk) == std::vector<uint8_t>(disk.begin(), disk.begin() + kChunk));
}

TEST_CASE("stored chunk source forwards a prefetch hint only for a range it cannot serve itself") {
  const std::vector<uint8_t> disk = Disk();
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(disk));
  StoredChunkSource src(counting, MakeMemoryDecodedStore(kChunk));
  (void)Read(src, 0, 5 * kChunk);  // 0, 1 stored; 2, 3 zero; 4 stored
  src.Prefetch(kChunk, 4 * kChunk);
  CHECK(counting->prefetches.empty());
  src.Prefetch(kChunk, 5 * kChunk);  // reaches chunk 5
  REQUIRE(counting->prefetches.size() == 1);
  CHECK(counting->prefetches[0] == std::pair<uint64_t, uint64_t>{5 * kChunk, kChunk});
}
