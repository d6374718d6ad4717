#include "cache/cached_source.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <random>

#include "base/memory_source.h"
#include "cache/cache_test_util.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

constexpr uint32_t kChunk = 64 << 10;

// Wraps a source and counts the reads that reach it.
class CountingSource final : public ByteSource {
 public:
  explicit CountingSource(ByteSourcePtr inner) : inner_(std::move(inner)) {}
  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    ++reads;
    bytes += buf.size();
    if (fail) return Unavailable("registry down");
    return inner_->ReadAt(offset, buf);
  }
  std::string Describe() const override { return "layer " + kKey; }
  mutable std::atomic<int> reads{0};
  mutable std::atomic<uint64_t> bytes{0};
  std::atomic<bool> fail{false};

 private:
  ByteSourcePtr inner_;
};

std::vector<uint8_t> Blob(size_t n) { return Pattern(12345, n); }

std::shared_ptr<ChunkCache> OpenCache(const std::string& dir) {
  auto cache = ChunkCache::Open({.dir = dir, .chunk_size = kChunk});
  REQUIRE(cache.ok());
  return *cache;
}

}  // namespace

TEST_CASE("cached source reads equal the inner bytes at any offset and length") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(5 * kChunk + 1234);
  auto inner = std::make_shared<MemorySource>(blob);
  CachedSource src(inner, OpenCache(tmp.path()), kKey);
  REQUIRE(src.size() == blob.size());
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300; ++i) {
    uint64_t offset = rng() % (blob.size() + 100);
    size_t len = rng() % (3 * kChunk);
    if (i % 5 == 0) offset = (rng() % 6) * kChunk - (rng() % 2);  // around a boundary
    if (offset > blob.size() + 100) offset = 0;
    std::vector<uint8_t> buf(len, 0xee);
    auto n = src.ReadAt(offset, buf);
    REQUIRE(n.ok());
    size_t want = offset >= blob.size() ? 0 : std::min<size_t>(len, blob.size() - offset);
    INFO("offset " << offset << " len " << len);
    REQUIRE(*n == want);
    REQUIRE(std::equal(buf.begin(), buf.begin() + want, blob.begin() + offset));
  }
}

TEST_CASE("cached source reads the short last chunk and stops at the end") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(2 * kChunk + 10);
  CachedSource src(std::make_shared<MemorySource>(blob), OpenCache(tmp.path()), kKey);
  std::vector<uint8_t> buf(100);
  auto tail = src.ReadAt(blob.size() - 4, buf);
  REQUIRE(tail.ok());
  CHECK(*tail == 4);
  CHECK(std::equal(buf.begin(), buf.begin() + 4, blob.end() - 4));
  auto at_end = src.ReadAt(blob.size(), buf);
  REQUIRE(at_end.ok());
  CHECK(*at_end == 0);
  auto past = src.ReadAt(blob.size() + 5000, buf);
  REQUIRE(past.ok());
  CHECK(*past == 0);
}

TEST_CASE("cached source fetches each chunk once, then serves repeats from the cache") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(3 * kChunk + 500);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob));
  {
    CachedSource src(counting, OpenCache(tmp.path()), kKey);
    std::vector<uint8_t> buf(kChunk + 200);
    REQUIRE(src.ReadAt(kChunk - 100, buf).ok());  // touches chunks 0, 1 and 2
    CHECK(counting->reads == 3);
    CHECK(counting->bytes == 3 * kChunk);  // whole chunks, one inner read each
    REQUIRE(src.ReadAt(kChunk - 100, buf).ok());
    CHECK(counting->reads == 3);
  }
  // A later mount (a new cache on the same dir) finds them too.
  CachedSource again(counting, OpenCache(tmp.path()), kKey);
  std::vector<uint8_t> all(blob.size());
  auto n = again.ReadAt(0, all);
  REQUIRE(n.ok());
  CHECK(all == blob);
  CHECK(counting->reads == 4);  // only chunk 3 was new
}

TEST_CASE("cached source returns inner errors and caches nothing from them") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(kChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob));
  auto cache = OpenCache(tmp.path());
  CachedSource src(counting, cache, kKey);
  std::vector<uint8_t> buf(10);
  counting->fail = true;
  auto bad = src.ReadAt(0, buf);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kUnavailable);
  CHECK(bad.status().message().find("chunk 0") != std::string::npos);
  counting->fail = false;
  auto good = src.ReadAt(0, buf);
  REQUIRE(good.ok());
  CHECK(std::equal(buf.begin(), buf.end(), blob.begin()));
  CHECK(cache->stats().fetched_bytes == kChunk);
}

TEST_CASE("cached source refuses an inner source shorter than it claims") {
  class Liar final : public ByteSource {
   public:
    uint64_t size() const override { return 2 * kChunk; }
    Result<size_t> ReadAt(uint64_t, std::span<uint8_t> buf) const override { return buf.size() / 2; }
  };
  TempDir tmp;
  CachedSource src(std::make_shared<Liar>(), OpenCache(tmp.path()), kKey);
  std::vector<uint8_t> buf(10);
  CHECK(src.ReadAt(0, buf).status().code() == Code::kCorrupt);
}

TEST_CASE("cached source with an invalid key fails every read") {
  TempDir tmp;
  CachedSource src(MemorySource::FromString("abc"), OpenCache(tmp.path()), "sha256:../../etc");
  std::vector<uint8_t> buf(3);
  CHECK(src.ReadAt(0, buf).status().code() == Code::kInvalidArgument);
}
