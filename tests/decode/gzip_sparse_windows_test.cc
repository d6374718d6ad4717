#include "decode/gzip_sparse_windows.h"

#include <catch2/catch.hpp>
#include <random>

#include "base/memory_source.h"
#include "decode/gzip_indexer.h"
#include "decode/gzip_inflate.h"
#include "testing/counting_source.h"
#include "testing/gzip_indexed.h"
#include "testing/layer_test_data.h"

using namespace ocifs;

namespace {

// Every checkpoint of `index` inflates `data` exactly, to the next checkpoint and a window beyond.
void RequireExact(const MemorySource& blob, const GzipIndex& index, const std::vector<uint8_t>& data) {
  for (size_t k = 0; k < index.checkpoints.size(); ++k) {
    const GzipCheckpoint& cp = index.checkpoints[k];
    const uint64_t end = k + 1 < index.checkpoints.size() ? index.checkpoints[k + 1].out : data.size();
    const size_t length = static_cast<size_t>(std::min<uint64_t>(data.size(), end + 40000) - cp.out);
    auto got = InflateFromCheckpoint(blob, cp, length, 0, "test layer");
    REQUIRE(got.ok());
    REQUIRE(got->size() == length);
    INFO("checkpoint " << k << " at " << cp.out);
    REQUIRE(std::equal(got->begin(), got->end(), data.begin() + static_cast<ptrdiff_t>(cp.out)));
  }
}

}  // namespace

TEST_CASE("sparse gzip windows keep only the bytes the data after each checkpoint copies") {
  // Incompressible runs (few matches: windows nearly all unreferenced), text and zeros.
  const std::vector<uint8_t> data = testing::MakeLayerData(3 << 20, 11);
  const MemorySource blob(testing::GzipMember(data), "layer");
  GzipIndex index = testing::IndexedGzip(blob, data.size(), 128 << 10);
  REQUIRE(index.checkpoints.size() > 8);
  SparseWindowStats stats;
  REQUIRE(SparsifyGzipWindows(blob, index, "layer", &stats).ok());
  CHECK(stats.checkpoints > 8);
  CHECK(stats.sparse > 0);
  CHECK(stats.bytes_kept < stats.window_bytes);
  CHECK(stats.zwindow_after < stats.zwindow_before);
  RequireExact(blob, index, data);
}

TEST_CASE("sparse gzip windows of random data are (nearly) empty") {
  std::mt19937 rng(5);
  std::vector<uint8_t> data(2 << 20);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  const MemorySource blob(testing::GzipMember(data), "layer");
  GzipIndex index = testing::IndexedGzip(blob, data.size(), 256 << 10);
  SparseWindowStats stats;
  REQUIRE(SparsifyGzipWindows(blob, index, "layer", &stats).ok());
  REQUIRE(stats.checkpoints > 0);
  CHECK(stats.sparse == stats.checkpoints);
  // Each window's few referenced bytes compress to far less than the window.
  CHECK(stats.zwindow_after * 20 < stats.zwindow_before);
  RequireExact(blob, index, data);
}

TEST_CASE("windows the data copies from throughout stay whole and exact") {
  // Text from a small vocabulary: matches reach into the windows everywhere.
  const std::vector<uint8_t> data = testing::MakeTextData(2 << 20, 3);
  const MemorySource blob(testing::GzipMember(data), "layer");
  GzipIndex index = testing::IndexedGzip(blob, data.size(), 128 << 10);
  SparseWindowStats stats;
  REQUIRE(SparsifyGzipWindows(blob, index, "layer", &stats).ok());
  CHECK(stats.checkpoints > 0);
  CHECK(stats.bytes_kept > 0);
  RequireExact(blob, index, data);
}

TEST_CASE("sparse windows of corrupt data: an error naming the layer, no crash") {
  const std::vector<uint8_t> data = testing::MakeLayerData(1 << 20, 2);
  std::vector<uint8_t> gz = testing::GzipMember(data);
  const MemorySource good(gz, "layer");
  GzipIndex index = testing::IndexedGzip(good, data.size(), 64 << 10);
  REQUIRE(index.checkpoints.size() > 2);
  // Cut the blob right after the second checkpoint: its inflate runs out of data.
  gz.resize(static_cast<size_t>(index.checkpoints[1].in + 16));
  const MemorySource cut(gz, "layer");
  Status st = SparsifyGzipWindows(cut, index, "cut layer");
  REQUIRE_FALSE(st.ok());
  CHECK(st.ToString().find("cut layer") != std::string::npos);
}

TEST_CASE("a window is made sparse from a few reads of the compressed bytes, not tens of bytes at a time") {
  // Each of its four inflates (three trial windows, then the check) makes
  // 32 KiB of output from about as many compressed bytes: a read or two
  // each, through the cache stage of `oci-fs accelerate`.
  std::mt19937 rng(6);
  std::vector<uint8_t> data(2 << 20);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  const auto blob = std::make_shared<MemorySource>(testing::GzipMember(data), "layer");
  GzipIndex index = testing::IndexedGzip(*blob, data.size(), 256 << 10);
  const testing::CountingSource counted(blob);
  SparseWindowStats stats;
  REQUIRE(SparsifyGzipWindows(counted, index, "layer", &stats).ok());
  REQUIRE(stats.checkpoints > 4);
  CHECK(stats.sparse == stats.checkpoints);
  INFO(counted.reads.load() << " reads for " << stats.checkpoints << " windows");
  CHECK(counted.reads.load() <= static_cast<int>(stats.checkpoints * 4 * 3));
  RequireExact(*blob, index, data);
}
