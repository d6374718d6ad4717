#include "decode/index_fallback_source.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "base/memory_source.h"
#include "decode/decoder.h"
#include "decode/gzip_source.h"
#include "testing/concurrent_reads.h"
#include "testing/gzip_index_tamper.h"
#include "testing/layer_test_data.h"
#include "testing/log_capture.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using ocifs::testing::LogCapture;
using ocifs::testing::TempDir;

namespace {

constexpr const char* kSwitchLog = "proved wrong";

std::vector<uint8_t> FallbackFileBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// A gzip layer with its good index (IndexedGzipLayer), as a mount opens it.
struct FallbackLayer : ocifs::testing::IndexedGzipLayer {
  std::vector<uint8_t> good_file;  // the good index's bytes

  FallbackLayer(const TempDir& dir, std::vector<uint8_t> bytes, std::vector<uint8_t> compressed = {})
      : IndexedGzipLayer(dir / "layer.gzidx", std::move(bytes), "layer-fb", 256 << 10, std::move(compressed)),
        good_file(FallbackFileBytes(options.index_path)) {
    options.segment_cache_bytes = 1 << 20;
  }
  FallbackLayer(const TempDir& dir, size_t size, uint32_t seed) : FallbackLayer(dir, ocifs::testing::MakeLayerData(size, seed)) {}
  // Text (MakeTextData) with a run of zeros in its middle: its checkpoints' windows matter.
  static std::vector<uint8_t> Text(size_t size, uint32_t seed) {
    std::vector<uint8_t> data = ocifs::testing::MakeTextData(size, seed);
    std::fill_n(data.begin() + static_cast<ptrdiff_t>(size / 2), size / 8, uint8_t{0});
    return data;
  }

  // The decoded layer as a mount opens it.
  ByteSourcePtr Open() const {
    auto opened = OpenDecoded(blob, Compression::kGzip, options);
    REQUIRE(opened.ok());
    return *opened;
  }
};

// Reads all of `source` in random-sized pieces in order, then at random offsets; every read must be exact.
void RequireExactReads(const ByteSource& source, const std::vector<uint8_t>& data, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> buf;
  auto read = [&](uint64_t at, size_t max) {
    buf.assign(1 + rng() % max, 0xEE);
    auto n = source.ReadAt(at, buf);
    INFO("read at " << at);
    REQUIRE(n.ok());
    REQUIRE(*n == std::min<uint64_t>(buf.size(), data.size() - at));
    REQUIRE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(*n), data.begin() + static_cast<ptrdiff_t>(at)));
    return *n;
  };
  for (uint64_t at = 0; at < data.size();) at += read(at, 300000);
  for (int i = 0; i < 60; ++i) read(rng() % data.size(), 200000);
}

}  // namespace

TEST_CASE("an index with a flipped window byte: every read is exact, one error is logged, the index is rebuilt") {
  LogCapture log;  // first: outlives the sources that log
  TempDir dir("ocifs-fb-window");
  FallbackLayer layer(dir, FallbackLayer::Text(4 << 20, 200));
  GzipIndex bad = layer.index;
  REQUIRE(ocifs::testing::FlipWindowByteThatMatters(bad, *layer.blob, layer.data) > 0);
  REQUIRE(bad.Save(layer.options.index_path).ok());
  REQUIRE(FallbackFileBytes(layer.options.index_path) != layer.good_file);
  {
    ByteSourcePtr source = layer.Open();
    auto* fallback = dynamic_cast<const IndexFallbackSource*>(source.get());
    REQUIRE(fallback != nullptr);
    CHECK(source->access() == ByteSource::Access::kRandom);
    CHECK(source->size() == layer.data.size());
    RequireExactReads(*source, layer.data, 201);
    CHECK(fallback->fell_back());
    CHECK(log.Count(spdlog::level::err, kSwitchLog) == 1);
    CHECK(log.Count(spdlog::level::err, "is wrong: block ") == 1);  // the reason, in the same message
    // The new pass saved its index over the wrong one: the same file a first pass makes.
    REQUIRE(source->WaitUntilIndexed().ok());
    CHECK(FallbackFileBytes(layer.options.index_path) == layer.good_file);
    CHECK(source->size() == layer.data.size());
    RequireExactReads(*source, layer.data, 202);
    CHECK(log.Count(spdlog::level::err, kSwitchLog) == 1);
  }
  // The next mount loads the rebuilt index and uses it.
  ByteSourcePtr next = layer.Open();
  RequireExactReads(*next, layer.data, 203);
  CHECK_FALSE(dynamic_cast<const IndexFallbackSource&>(*next).fell_back());
  CHECK(log.Count(spdlog::level::err, kSwitchLog) == 1);
}

TEST_CASE("an index for another blob of the same size and tail is caught by its checksums") {
  LogCapture log;
  TempDir dir("ocifs-fb-other");
  // Two blobs of a stored member of the same length and the same last member: same size, same last 16 bytes.
  const auto a = ocifs::testing::MakeLayerData(1 << 20, 210), b = ocifs::testing::MakeLayerData(1 << 20, 211);
  const auto common = ocifs::testing::MakeLayerData(300 << 10, 212);
  auto blob_of = [&](const std::vector<uint8_t>& first) {
    std::vector<uint8_t> blob = ocifs::testing::GzipMember(first, 0), last = ocifs::testing::GzipMember(common);
    blob.insert(blob.end(), last.begin(), last.end());
    return blob;
  };
  auto concat = [&](std::vector<uint8_t> first) {
    first.insert(first.end(), common.begin(), common.end());
    return first;
  };
  const std::vector<uint8_t> blob_a = blob_of(a), blob_b = blob_of(b);
  REQUIRE(blob_a.size() == blob_b.size());
  REQUIRE(std::equal(blob_a.end() - 16, blob_a.end(), blob_b.end() - 16));
  FallbackLayer layer_a(dir, concat(a), blob_a);  // saves A's index at dir/layer.gzidx
  // B's mount finds A's index at its side path.
  auto blob = std::make_shared<MemorySource>(blob_b, "layer-b");
  REQUIRE(LoadGzipIndexFor(*blob, layer_a.options.index_path).has_value());  // size and tail agree
  auto opened = OpenDecoded(blob, Compression::kGzip, layer_a.options);
  REQUIRE(opened.ok());
  const std::vector<uint8_t> data_b = concat(b);
  RequireExactReads(**opened, data_b, 213);
  CHECK(dynamic_cast<const IndexFallbackSource&>(**opened).fell_back());
  CHECK(log.Count(spdlog::level::err, kSwitchLog) == 1);
  CHECK(log.Count(spdlog::level::err, "gzip index of layer-b is wrong: block 0 at decompressed offset 0") == 1);
}

TEST_CASE("an index with a flipped block checksum falls back the same way") {
  LogCapture log;
  TempDir dir("ocifs-fb-crc");
  FallbackLayer layer(dir, 3 << 20, 220);
  GzipIndex bad = layer.index;
  bad.block_crcs[ocifs::testing::DataBlock(layer.data, bad.block_size, bad.block_crcs.size() / 2)] ^= 0x80000000u;
  REQUIRE(bad.Save(layer.options.index_path).ok());
  ByteSourcePtr source = layer.Open();
  CHECK(source->WaitUntilIndexed().ok());  // the primary builds nothing
  RequireExactReads(*source, layer.data, 221);
  CHECK(log.Count(spdlog::level::err, kSwitchLog) == 1);
  REQUIRE(source->WaitUntilIndexed().ok());  // the fallback's pass, saved
  CHECK(FallbackFileBytes(layer.options.index_path) == layer.good_file);
}

TEST_CASE("an index whose checkpoint makes inflate fail falls back; a layer that is itself corrupt still fails") {
  LogCapture log;
  TempDir dir("ocifs-fb-in");
  FallbackLayer layer(dir, 3 << 20, 230);
  GzipIndex bad = layer.index;
  REQUIRE(bad.checkpoints.size() > 3);
  bad.checkpoints[2].in -= 7;  // inside the block before: bad codes, or wrong bytes
  bad.checkpoints[2].bits = static_cast<uint8_t>((bad.checkpoints[2].bits + 3) % 8);
  REQUIRE(bad.checkpoints[2].in > bad.checkpoints[1].in);
  REQUIRE(bad.Save(layer.options.index_path).ok());
  ByteSourcePtr source = layer.Open();
  RequireExactReads(*source, layer.data, 231);
  CHECK(log.Count(spdlog::level::err, kSwitchLog) == 1);

  // A truncated blob with the good index: the fallback's pass fails too, and reads say so.
  std::vector<uint8_t> cut(layer.blob->size() / 2);
  REQUIRE(layer.blob->ReadAt(0, cut).ok());
  REQUIRE(layer.index.Save(layer.options.index_path).ok());
  GzipIndex for_cut = layer.index;  // the identity of the truncated blob, so it loads
  for_cut.compressed_size = cut.size();
  for_cut.tail.assign(cut.end() - 16, cut.end());
  std::erase_if(for_cut.checkpoints, [&](const GzipCheckpoint& cp) { return cp.in >= cut.size(); });
  REQUIRE(for_cut.Save(layer.options.index_path).ok());
  auto opened = OpenDecoded(std::make_shared<MemorySource>(cut, "layer-cut"), Compression::kGzip, layer.options);
  REQUIRE(opened.ok());
  std::vector<uint8_t> buf(64 << 10);
  Status last;
  for (uint64_t at = 0; at < layer.data.size() && last.ok(); at += buf.size()) {
    auto n = (*opened)->ReadAt(at, buf);
    if (!n.ok()) last = n.status();
    if (n.ok()) REQUIRE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(*n), layer.data.begin() + static_cast<ptrdiff_t>(at)));
  }
  CHECK(last.code() == Code::kCorrupt);
}

TEST_CASE("concurrent reads while a wrong index is dropped all see the layer's bytes; one error is logged") {
  LogCapture log;
  TempDir dir("ocifs-fb-threads");
  FallbackLayer layer(dir, FallbackLayer::Text(6 << 20, 240));
  GzipIndex bad = layer.index;
  REQUIRE(ocifs::testing::FlipWindowByteThatMatters(bad, *layer.blob, layer.data) > 0);
  bad.block_crcs[ocifs::testing::DataBlock(layer.data, bad.block_size, bad.block_crcs.size() * 3 / 4)] ^= 1;  // a second wrong place
  REQUIRE(bad.Save(layer.options.index_path).ok());
  for (int round = 0; round < 3; ++round) {
    REQUIRE(bad.Save(layer.options.index_path).ok());
    ByteSourcePtr source = layer.Open();
    CHECK(ocifs::testing::ConcurrentReadMismatches(*source, layer.data, 8, 40, 241 + round) == 0);
    CHECK(dynamic_cast<const IndexFallbackSource&>(*source).fell_back());
    CHECK(log.Count(spdlog::level::err, kSwitchLog) == round + 1);
    // Its pass may still run: let it finish before the next round rewrites the file.
    REQUIRE(source->WaitUntilIndexed().ok());
    CHECK(FallbackFileBytes(layer.options.index_path) == layer.good_file);
  }
}

namespace {

// A primary whose reads fail with `code` after `good` reads; counts reads.
class FailingSource final : public ByteSource {
 public:
  FailingSource(Code code, int good) : code_(code), good_(good) {}
  uint64_t size() const override { return 1000; }
  Result<size_t> ReadAt(uint64_t, std::span<uint8_t> buf) const override {
    if (reads_++ >= good_) return Status(code_, "primary failed");
    std::fill(buf.begin(), buf.end(), 'p');
    return buf.size();
  }
  std::string Describe() const override { return "primary"; }

 private:
  const Code code_;
  const int good_;
  mutable std::atomic<int> reads_{0};
};

// The fallback: a stream of unknown size whose bytes are 'f'.
class StreamSource final : public ByteSource {
 public:
  uint64_t size() const override { return kUnknownSize; }
  Result<size_t> ReadAt(uint64_t, std::span<uint8_t> buf) const override {
    std::fill(buf.begin(), buf.end(), 'f');
    return buf.size();
  }
  Access access() const override { return Access::kStream; }
};

}  // namespace

TEST_CASE("IndexFallbackSource switches once, on kDataLoss or kCorrupt only, and then is the fallback") {
  LogCapture log;
  std::atomic<int> made{0};
  auto factory = [&]() -> Result<ByteSourcePtr> {
    ++made;
    return ByteSourcePtr(std::make_shared<StreamSource>());
  };
  for (Code passes : {Code::kUnavailable, Code::kIoError, Code::kCancelled, Code::kInternal}) {
    IndexFallbackSource source(std::make_shared<FailingSource>(passes, 0), factory);
    std::vector<uint8_t> buf(10);
    CHECK(source.ReadAt(0, buf).status().code() == passes);
    CHECK_FALSE(source.fell_back());
  }
  CHECK(made == 0);
  for (Code wrong : {Code::kDataLoss, Code::kCorrupt}) {
    made = 0;
    IndexFallbackSource source(std::make_shared<FailingSource>(wrong, 1), factory);
    std::vector<uint8_t> buf(10);
    REQUIRE(source.ReadAt(0, buf).ok());
    CHECK(buf[0] == 'p');
    CHECK(source.size() == 1000);
    CHECK(source.access() == ByteSource::Access::kRandom);
    CHECK(source.Describe() == "primary");
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        std::vector<uint8_t> mine(10);
        for (int i = 0; i < 50; ++i) {
          auto n = source.ReadAt(0, mine);
          if (!n.ok() || mine[0] != 'f') mine[0] = 'X';
        }
        CHECK(mine[0] == 'f');
      });
    }
    for (auto& t : threads) t.join();
    CHECK(made == 1);
    CHECK(source.fell_back());
    CHECK(source.size() == ByteSource::kUnknownSize);
    CHECK(source.access() == ByteSource::Access::kStream);
  }
  CHECK(log.Count(spdlog::level::err, kSwitchLog) == 2);
  // A factory that fails: its error for every read from then on.
  IndexFallbackSource broken(std::make_shared<FailingSource>(Code::kDataLoss, 0),
                             []() -> Result<ByteSourcePtr> { return Internal("no pass"); });
  std::vector<uint8_t> buf(10);
  CHECK(broken.ReadAt(0, buf).status().message() == "no pass");
  CHECK(broken.ReadAt(0, buf).status().message() == "no pass");
}
