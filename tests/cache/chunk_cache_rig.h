// A ChunkCache of small chunks for the tests of src/cache/chunk_cache and
// chunk_stream, and the checks they share (Pattern chunks: cache_test_util.h).
#pragma once

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cache/cache_test_util.h"
#include "cache/chunk_cache.h"

namespace ocifs::testing {

inline constexpr uint32_t kTestChunkSize = 64 << 10;

inline std::shared_ptr<ChunkCache> OpenTestCache(const std::string& dir, uint64_t max_bytes = 1ull << 30) {
  auto cache = ChunkCache::Open({.dir = dir, .max_bytes = max_bytes, .chunk_size = kTestChunkSize});
  REQUIRE(cache.ok());
  return *cache;
}

// A fetch that fills the chunk with Pattern(index) and counts its calls.
struct CountingFetch {
  uint64_t index;
  std::atomic<int>* calls;
  Status operator()(std::span<uint8_t> out) const {
    ++*calls;
    auto p = Pattern(index, out.size());
    std::copy(p.begin(), p.end(), out.begin());
    return Status::Ok();
  }
};

// Whether chunk `index` of `key` is on disk; if so it must hold Pattern(index).
inline bool HasChunk(ChunkCache& cache, const std::string& key, uint64_t index, size_t length = kTestChunkSize) {
  std::vector<uint8_t> out(length);
  auto hit = cache.Lookup(key, index, out);
  REQUIRE(hit.ok());
  if (*hit) REQUIRE(out == Pattern(index, length));
  return *hit;
}

}  // namespace ocifs::testing
