// Microbenchmarks of the decoders (Google Benchmark): gzip reads through a
// checkpoint index, zstd frame decoding, and qcow2 cluster decompression
// (deflate, zstd), each on incompressible-ish data like a compressed qcow2.
// The 1 MiB reads span several checkpoint spans or frames: they show the decode pool.
// Built when libbenchmark-dev is installed; `decode_microbench` runs them.
// OCIFS_DECODE_THREADS=N sizes the decode pool (default: one per core), so
// `OCIFS_DECODE_THREADS=0 decode_microbench` shows the serial figures.
// BM_GzipLoaded*: reads through a saved index, version 2 (trusted) against
// version 3 (its reads verified by block checksums: a block's first read
// checks it, later ones only look at a bitmap).
#include <benchmark/benchmark.h>

#include <zlib.h>
#include <zstd.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "base/worker_pool.h"

#include "base/memory_source.h"
#include "decode/gzip_index.h"
#include "decode/gzip_source.h"
#include "decode/zstd_frame_source.h"
#include "disk/qcow2_decompress.h"

using namespace ocifs;

namespace {

// Half random, half zeros in 4 KiB blocks: compresses about 2:1.
std::vector<uint8_t> Data(size_t n) {
  std::vector<uint8_t> v(n, 0);
  std::mt19937_64 rng(3);
  for (size_t i = 0; i < n; ++i) {
    if ((i / 4096) % 2 == 0) v[i] = static_cast<uint8_t>(rng());
  }
  return v;
}

std::vector<uint8_t> Deflate(std::span<const uint8_t> in, int window_bits) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY);
  std::vector<uint8_t> out(deflateBound(&z, in.size()));
  z.next_in = const_cast<uint8_t*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

constexpr size_t kLayer = 32u << 20;

// The benchmarks' scheduler: its decode pool has OCIFS_DECODE_THREADS threads (default one per core).
std::shared_ptr<Scheduler> BenchScheduler() {
  static const std::shared_ptr<Scheduler> scheduler = [] {
    SchedulerOptions o;
    if (const char* threads = std::getenv("OCIFS_DECODE_THREADS")) o.decode_threads = std::strtoul(threads, nullptr, 10);
    return std::make_shared<Scheduler>(o);
  }();
  return scheduler;
}

// The benchmark's gzip layer: kLayer bytes of Data.
const std::vector<uint8_t>& GzipLayer() {
  static const std::vector<uint8_t> layer = Deflate(Data(kLayer), 31);
  return layer;
}

void BM_GzipIndexedRead(benchmark::State& state) {
  static std::shared_ptr<GzipSource> gzip = [] {
    DecoderOptions o;
    o.scheduler = BenchScheduler();
    o.segment_cache_bytes = 0;  // every read inflates from its checkpoint
    auto src = *GzipSource::Open(std::make_shared<MemorySource>(GzipLayer()), o);
    (void)src->WaitUntilIndexed();
    return src;
  }();
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> buf(n);
  std::mt19937_64 rng(4);
  for (auto _ : state) {
    auto got = gzip->ReadAt(rng() % (kLayer - n), buf);
    benchmark::DoNotOptimize(got);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_GzipIndexedRead)->Arg(4096)->Arg(1 << 20);

// A saved index of the benchmark layer: version 3 (block checksums, so reads
// are verified) or, stripped of them, version 2 (trusted, not verified).
std::string SavedIndex(bool checksums) {
  static const std::string dir = [] {
    std::string d = "/tmp/ocifs-decode-microbench-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    DecoderOptions o;
    o.scheduler = BenchScheduler();
    o.index_path = d + "/v3.gzidx";
    auto src = *GzipSource::Open(std::make_shared<MemorySource>(GzipLayer()), o);
    (void)src->WaitUntilIndexed();
    GzipIndex v2 = *GzipIndex::Load(o.index_path);
    v2.block_size = 0;
    v2.block_crcs.clear();
    (void)v2.Save(d + "/v2.gzidx");
    return d;
  }();
  return dir + (checksums ? "/v3.gzidx" : "/v2.gzidx");
}

// A GzipSource over the benchmark layer with its saved index (no segment cache: every read inflates).
std::shared_ptr<GzipSource> LoadedGzip(bool checksums) {
  DecoderOptions o;
  o.scheduler = BenchScheduler();
  o.segment_cache_bytes = 0;
  o.index_path = SavedIndex(checksums);
  return *GzipSource::Open(std::make_shared<MemorySource>(GzipLayer()), o);
}

// The whole layer in 1 MiB reads through a loaded index. Arg 0: a version 2
// index (no checks); 1: version 3, a new source each time, so every block is
// checked (the first read of each block); 2: version 3, one source, so its
// blocks were checked once already (later reads).
void BM_GzipLoadedScan(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  std::shared_ptr<GzipSource> kept = mode == 2 ? LoadedGzip(true) : nullptr;
  std::vector<uint8_t> buf(1 << 20);
  if (kept) {
    for (uint64_t at = 0; at < kLayer; at += buf.size()) (void)kept->ReadAt(at, buf);
  }
  for (auto _ : state) {
    state.PauseTiming();
    std::shared_ptr<GzipSource> gzip = kept ? kept : LoadedGzip(mode == 1);
    state.ResumeTiming();
    for (uint64_t at = 0; at < kLayer; at += buf.size()) {
      auto got = gzip->ReadAt(at, buf);
      if (!got.ok()) state.SkipWithError(got.status().ToString().c_str());
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kLayer));
}
BENCHMARK(BM_GzipLoadedScan)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// Random 4 KiB reads through a loaded index (arg as for BM_GzipLoadedScan, 1
// and 2 alike: one source, whose blocks get checked on their first read).
void BM_GzipLoadedRandomRead(benchmark::State& state) {
  std::shared_ptr<GzipSource> gzip = LoadedGzip(state.range(0) != 0);
  std::vector<uint8_t> buf(4096);
  std::mt19937_64 rng(6);
  for (auto _ : state) {
    auto got = gzip->ReadAt(rng() % (kLayer - buf.size()), buf);
    benchmark::DoNotOptimize(got);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
}
BENCHMARK(BM_GzipLoadedRandomRead)->Arg(0)->Arg(1)->UseRealTime();

// zlib's crc32 alone, over 64 KiB blocks: the cost of checking a block once.
void BM_Crc32(benchmark::State& state) {
  const std::vector<uint8_t> data = Data(64 << 10);
  for (auto _ : state) benchmark::DoNotOptimize(crc32(0, data.data(), static_cast<uInt>(data.size())));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Crc32);

void BM_ZstdFrameRead(benchmark::State& state) {
  static std::shared_ptr<ZstdFrameSource> zstd = [] {
    auto data = Data(kLayer);
    std::vector<uint8_t> blob;
    std::vector<ZstdFrame> frames;
    const size_t frame = 4u << 20;
    for (size_t at = 0; at < data.size(); at += frame) {
      std::vector<uint8_t> out(ZSTD_compressBound(frame));
      size_t c = ZSTD_compress(out.data(), out.size(), data.data() + at, frame, 3);
      frames.push_back({blob.size(), c, at, frame});
      blob.insert(blob.end(), out.begin(), out.begin() + static_cast<ptrdiff_t>(c));
    }
    return std::make_shared<ZstdFrameSource>(std::make_shared<MemorySource>(std::move(blob)), std::move(frames), 0,
                                             BenchScheduler());
  }();
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> buf(n);
  std::mt19937_64 rng(5);
  for (auto _ : state) {
    auto got = zstd->ReadAt(rng() % (kLayer - n), buf);
    benchmark::DoNotOptimize(got);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_ZstdFrameRead)->Arg(4096)->Arg(1 << 20);

void BM_Qcow2Cluster(benchmark::State& state) {
  const bool zstd = state.range(0) != 0;
  auto data = Data(64 << 10);
  std::vector<uint8_t> packed;
  if (zstd) {
    packed.resize(ZSTD_compressBound(data.size()));
    packed.resize(ZSTD_compress(packed.data(), packed.size(), data.data(), data.size(), 3));
  } else {
    packed = Deflate(data, -12);  // raw deflate, as qemu writes
  }
  std::vector<uint8_t> out(data.size());
  for (auto _ : state) {
    Status st = DecompressCluster(zstd ? Qcow2Compression::kZstd : Qcow2Compression::kDeflate, packed, out);
    benchmark::DoNotOptimize(st);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out.size()));
}
BENCHMARK(BM_Qcow2Cluster)->Arg(0)->Arg(1);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::filesystem::remove_all("/tmp/ocifs-decode-microbench-" + std::to_string(::getpid()));
  return 0;
}
