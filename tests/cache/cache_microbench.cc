// Microbenchmarks of the cache hit path (Google Benchmark): a warm CachedSource
// read at FUSE-like sizes, aligned and not, and ChunkCache::Read of a hit.
// Built when libbenchmark-dev is installed; `cache_microbench` runs them.
#include <benchmark/benchmark.h>

#include <stdlib.h>

#include <filesystem>
#include <random>

#include "base/memory_source.h"
#include "cache/cached_source.h"
#include "cache/kept_piece_file.h"

using namespace ocifs;

namespace {

constexpr uint64_t kBlob = 64ull << 20;

struct Warm {
  std::string dir;
  std::shared_ptr<ChunkCache> cache;
  std::unique_ptr<CachedSource> source;
  Warm() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ocifs-microbench-XXXXXX").string();
    dir = ::mkdtemp(tmpl.data());
    std::vector<uint8_t> bytes(kBlob);
    std::mt19937_64 rng(1);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    cache = *ChunkCache::Open({.dir = dir});
    FetchPolicy o;
    o.prefetch_threads = 0;
    source = std::make_unique<CachedSource>(std::make_shared<MemorySource>(std::move(bytes)), cache,
                                            "sha256:" + std::string(64, 'b'), o);
    std::vector<uint8_t> all(kBlob);
    (void)source->ReadAt(0, all);
  }
  ~Warm() {
    source.reset();
    cache.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Warm& Shared() {
  static Warm warm;
  return warm;
}

// state.range(0): read size; state.range(1): 1 = offsets aligned to the read size.
void BM_CachedSourceHit(benchmark::State& state) {
  Warm& w = Shared();
  const size_t n = static_cast<size_t>(state.range(0));
  const bool aligned = state.range(1) != 0;
  std::vector<uint8_t> buf(n);
  std::mt19937_64 rng(2);
  for (auto _ : state) {
    uint64_t off = rng() % (kBlob - n);
    if (aligned) off -= off % n;
    auto got = w.source->ReadAt(off, buf);
    benchmark::DoNotOptimize(got);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_CachedSourceHit)->ArgsProduct({{4096, 131072, 1 << 20}, {0, 1}});

void BM_ChunkCacheReadHit(benchmark::State& state) {
  Warm& w = Shared();
  std::vector<uint8_t> chunk(w.cache->chunk_size());
  const std::string key = "sha256:" + std::string(64, 'b');
  uint64_t i = 0;
  for (auto _ : state) {
    Status st = w.cache->Read(key, i++ % (kBlob / chunk.size()), chunk, [](std::span<uint8_t>) { return Status::Ok(); });
    benchmark::DoNotOptimize(st);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * chunk.size()));
}
BENCHMARK(BM_ChunkCacheReadHit);

// ChunkCache::Store of a 64 KiB chunk (how qcow2 clusters were kept before KeptPieceFile): header, CRC,
// temp file, rename, LRU and usage bookkeeping.
void BM_ChunkCacheStore64K(benchmark::State& state) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "ocifs-microbench-XXXXXX").string();
  const std::string dir = ::mkdtemp(tmpl.data());
  auto cache = *ChunkCache::Open({.dir = dir, .chunk_size = 64u << 10});
  std::vector<uint8_t> chunk(64u << 10);
  std::mt19937_64 rng(3);
  for (auto& b : chunk) b = static_cast<uint8_t>(rng());
  const std::string key = "sha256:" + std::string(64, 'c');
  uint64_t i = 0;
  for (auto _ : state) {
    Status st = cache->Store(key, i++, chunk);
    benchmark::DoNotOptimize(st);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * chunk.size()));
  cache.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}
BENCHMARK(BM_ChunkCacheStore64K)->Iterations(5000);

// KeptPieceFile::Put of a 64 KiB piece (what replaced BM_ChunkCacheStore64K
// for kept clusters): CRC, two pwrites into one sparse file, usage bookkeeping.
void BM_KeptPieceFilePut64K(benchmark::State& state) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "ocifs-microbench-XXXXXX").string();
  const std::string dir = ::mkdtemp(tmpl.data());
  auto cache = *ChunkCache::Open({.dir = dir, .chunk_size = 64u << 10});
  auto file = *KeptPieceFile::Open(cache, "sha256:" + std::string(64, 'c') + ":raw-chunks-0", 64u << 10);
  std::vector<uint8_t> piece(64u << 10);
  std::mt19937_64 rng(3);
  for (auto& b : piece) b = static_cast<uint8_t>(rng());
  uint64_t i = 0;
  for (auto _ : state) {
    Status st = file->Put(i++, piece);
    benchmark::DoNotOptimize(st);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * piece.size()));
  file.reset();
  cache.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}
BENCHMARK(BM_KeptPieceFilePut64K)->Iterations(5000);

}  // namespace

BENCHMARK_MAIN();
