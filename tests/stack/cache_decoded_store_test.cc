#include "stack/cache_decoded_store.h"

#include <catch2/catch.hpp>

#include <filesystem>

#include "testing/temp_dir.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

const std::string kKey =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef:qcow2-clusters-400";

std::shared_ptr<ChunkCache> OpenCache(const TempDir& dir) {
  ChunkCacheOptions options;
  options.dir = dir.path();
  options.chunk_size = 64 << 10;
  options.max_bytes = 64 << 20;
  auto cache = ChunkCache::Open(options);
  REQUIRE(cache.ok());
  return *cache;
}

bool GetIs(const DecodedChunkStore& store, uint64_t index, uint8_t fill) {
  std::vector<uint8_t> out(64 << 10);
  auto hit = store.Get(index, out);
  REQUIRE(hit.ok());
  return *hit && out == std::vector<uint8_t>(64 << 10, fill);
}

}  // namespace

TEST_CASE("chunks on disk are found by a store made later, and only those") {
  TempDir dir;
  auto cache = OpenCache(dir);
  CacheDecodedStore first(cache, kKey);
  REQUIRE_FALSE(first.Contains(5));
  REQUIRE_FALSE(GetIs(first, 5, 0x55));
  REQUIRE(first.Put(5, std::vector<uint8_t>(64 << 10, 0x55)).ok());
  REQUIRE(first.Contains(5));
  REQUIRE(GetIs(first, 5, 0x55));

  // A later store (the next mount) lists the key's chunks when it is made.
  CacheDecodedStore second(OpenCache(dir), kKey);
  REQUIRE(second.Contains(5));
  REQUIRE(GetIs(second, 5, 0x55));
  REQUIRE_FALSE(second.Contains(6));

  // A chunk stored by another store after this one was made is not seen.
  REQUIRE(first.Put(6, std::vector<uint8_t>(64 << 10, 0x66)).ok());
  REQUIRE_FALSE(second.Contains(6));
  REQUIRE_FALSE(GetIs(second, 6, 0x66));
}

TEST_CASE("a chunk gone from disk is a miss, and the store stops looking for it") {
  TempDir dir;
  auto cache = OpenCache(dir);
  CacheDecodedStore store(cache, kKey);
  REQUIRE(store.Put(2, std::vector<uint8_t>(64 << 10, 0x22)).ok());
  REQUIRE(store.Put(3, std::vector<uint8_t>(64 << 10, 0x33)).ok());
  std::filesystem::remove(dir / ("chunks/65536/" + kKey + "/2"));
  REQUIRE_FALSE(GetIs(store, 2, 0x22));
  REQUIRE_FALSE(store.Contains(2));
  REQUIRE(GetIs(store, 3, 0x33));
  // A damaged file is dropped by the cache's checks: a miss, not wrong bytes.
  {
    std::FILE* f = std::fopen((dir / ("chunks/65536/" + kKey + "/3")).c_str(), "r+b");
    REQUIRE(f != nullptr);
    std::fseek(f, 100, SEEK_SET);
    std::fputc(0x00, f);
    std::fclose(f);
  }
  REQUIRE_FALSE(GetIs(store, 3, 0x33));
  REQUIRE_FALSE(store.Contains(3));
}
