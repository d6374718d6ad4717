// Crash safety: a writer killed with SIGKILL at a random moment never leaves a
// chunk that is served wrong.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "cache/cache_test_util.h"
#include "cache/chunk_cache.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

constexpr uint32_t kCrashChunk = 64 << 10;
constexpr uint64_t kCrashChunks = 16;

// Chunk `index` as written in generation `gen`: the generation in the first
// 8 bytes, then Pattern(index, .., gen).
std::vector<uint8_t> Versioned(uint64_t index, uint64_t gen) {
  std::vector<uint8_t> v = Pattern(index, kCrashChunk, gen);
  std::memcpy(v.data(), &gen, sizeof(gen));
  return v;
}

[[noreturn]] void WriteForever(const std::string& dir) {
  auto cache = ChunkCache::Open({.dir = dir, .max_bytes = 12 * (kCrashChunk + 64ull), .chunk_size = kCrashChunk});
  if (!cache.ok()) ::_exit(2);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (uint64_t n = 0; std::chrono::steady_clock::now() < deadline; ++n) {
    // Overwrites and evictions happen too: 16 chunks do not fit in 12.
    if (!(*cache)->Store(kKey, n % kCrashChunks, Versioned(n % kCrashChunks, n)).ok()) ::_exit(3);
  }
  ::_exit(0);
}

}  // namespace

TEST_CASE("chunk cache killed mid-write serves every chunk whole or not at all") {
  TempDir tmp;
  std::mt19937 rng(std::random_device{}());
  uint64_t seen = 0;
  for (int round = 0; round < 6; ++round) {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) WriteForever(tmp.path());
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 150));
    REQUIRE(::kill(child, SIGKILL) == 0);
    int wstatus = 0;
    REQUIRE(::waitpid(child, &wstatus, 0) == child);
    INFO("round " << round << ", child status " << wstatus);
    REQUIRE((WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL));

    auto cache = ChunkCache::Open({.dir = tmp.path(), .max_bytes = 12 * (kCrashChunk + 64ull), .chunk_size = kCrashChunk});
    REQUIRE(cache.ok());
    for (uint64_t i = 0; i < kCrashChunks; ++i) {
      std::vector<uint8_t> out(kCrashChunk);
      auto hit = (*cache)->Lookup(kKey, i, out);
      REQUIRE(hit.ok());
      if (!*hit) continue;
      ++seen;
      uint64_t gen = 0;
      std::memcpy(&gen, out.data(), sizeof(gen));
      CHECK(gen % kCrashChunks == i);
      CHECK(out == Versioned(i, gen));
    }
    CHECK((*cache)->stats().corrupt_dropped == 0);
  }
  CHECK(seen > 0);  // the children did write
}
