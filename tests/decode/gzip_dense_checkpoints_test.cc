#include "decode/gzip_dense_checkpoints.h"

#include <catch2/catch.hpp>
#include <random>

#include "base/memory_source.h"
#include "decode/gzip_indexer.h"
#include "decode/gzip_inflate.h"
#include "testing/gzip_indexed.h"
#include "testing/layer_test_data.h"

using namespace ocifs;

namespace {

// Random bytes with a text run in the middle (windows there stay large).
std::vector<uint8_t> MixedData() {
  std::mt19937 rng(9);
  std::vector<uint8_t> data(4 << 20);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  const std::vector<uint8_t> text = testing::MakeTextData(1 << 20, 4);
  std::copy(text.begin(), text.end(), data.begin() + (2 << 20));
  return data;
}

// MixedData gzipped in one member, with its regular index (a checkpoint every MiB).
struct MixedLayer {
  const std::vector<uint8_t> data = MixedData();
  const MemorySource blob{testing::GzipMember(data), "layer"};
  GzipIndex index = testing::IndexedGzip(blob, data.size(), 1 << 20);
  const size_t regular = index.checkpoints.size();
};

}  // namespace

TEST_CASE("dense checkpoints are added where windows are sparse, and read exact") {
  MixedLayer l;
  DenseCheckpointOptions options;
  options.spacing = 128 << 10;
  DenseCheckpointStats stats;
  REQUIRE(AddSparseCheckpoints(l.blob, l.index, "layer", options, &stats).ok());
  CHECK(stats.added > 10);
  CHECK(l.index.checkpoints.size() == l.regular + stats.added);
  CHECK(stats.zwindow_bytes <= stats.added * options.max_zwindow);
  // Sorted, distinct, and every one restarts the stream exactly.
  for (size_t k = 1; k < l.index.checkpoints.size(); ++k) {
    REQUIRE(l.index.checkpoints[k - 1].out < l.index.checkpoints[k].out);
  }
  size_t in_text = 0;
  for (const GzipCheckpoint& cp : l.index.checkpoints) {
    if (cp.out > (2 << 20) + (64 << 10) && cp.out < (3 << 20)) ++in_text;
    const size_t length = static_cast<size_t>(std::min<uint64_t>(l.data.size() - cp.out, 100000));
    auto got = InflateFromCheckpoint(l.blob, cp, length, 0, "layer");
    REQUIRE(got.ok());
    INFO("checkpoint at " << cp.out);
    REQUIRE(std::equal(got->begin(), got->end(), l.data.begin() + static_cast<ptrdiff_t>(cp.out)));
  }
  // The text run's windows are copied from throughout: no dense checkpoint there.
  CHECK(in_text <= 1);
}

TEST_CASE("dense checkpoints respect their limits") {
  MixedLayer l;
  DenseCheckpointOptions options;
  options.spacing = 64 << 10;
  options.max_added = 5;
  DenseCheckpointStats stats;
  REQUIRE(AddSparseCheckpoints(l.blob, l.index, "layer", options, &stats).ok());
  CHECK(stats.added == 5);
  CHECK(l.index.checkpoints.size() == l.regular + 5);
}

TEST_CASE("dense checkpoints of another blob's index: an error, the index unchanged") {
  MixedLayer l;
  l.index.decompressed_size += 1;  // as if built for another blob
  Status st = AddSparseCheckpoints(l.blob, l.index, "other layer");
  REQUIRE_FALSE(st.ok());
  CHECK(st.ToString().find("other layer") != std::string::npos);
  CHECK(l.index.checkpoints.size() == l.regular);
}
