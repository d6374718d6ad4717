#include "decode/gzip_saved_index.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "base/all_zero.h"
#include "base/memory_source.h"
#include "decode/gzip_source.h"
#include "testing/counting_source.h"
#include "testing/gzip_index_tamper.h"
#include "testing/layer_test_data.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using ocifs::testing::TempDir;

namespace {

std::vector<uint8_t> FileBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Data with a 6 MiB run of zeros (a raw disk's empty space) between data.
std::vector<uint8_t> DiskLikeData() {
  std::vector<uint8_t> data = ocifs::testing::MakeLayerData(1 << 20, 100);
  data.resize(data.size() + (6 << 20), 0);
  const auto tail = ocifs::testing::MakeLayerData(1 << 20, 101);
  data.insert(data.end(), tail.begin(), tail.end());
  return data;
}

// A layer of DiskLikeData and its index (version 3, with zero runs) saved in `dir`.
struct Layer : ocifs::testing::IndexedGzipLayer {
  explicit Layer(const TempDir& dir) : IndexedGzipLayer(dir / "built.gzidx", DiskLikeData(), "layer-u", 512 << 10) {
    REQUIRE(index.has_checksums());
    REQUIRE_FALSE(index.zero_runs.empty());
  }
};

}  // namespace

TEST_CASE("RewriteWithoutZeroRuns keeps a v3 index's checkpoints and checksums, drops its zero runs and sets the flag") {
  TempDir dir("ocifs-untrusted");
  Layer layer(dir);
  const std::string out = dir / "side.gzidx";
  REQUIRE(RewriteWithoutZeroRuns(layer.options.index_path, out).ok());
  const std::vector<uint8_t> bytes = FileBytes(out);
  REQUIRE(bytes.size() > 16);
  CHECK(bytes[8] == 3);
  CHECK(bytes[12] == 1);
  auto stripped = GzipIndex::Load(out);
  REQUIRE(stripped.ok());
  CHECK_FALSE(stripped->zero_runs_known);
  CHECK(stripped->zero_runs.empty());
  CHECK(stripped->block_crcs == layer.index.block_crcs);
  CHECK(stripped->block_size == layer.index.block_size);
  REQUIRE(stripped->checkpoints.size() == layer.index.checkpoints.size());
  for (size_t i = 0; i < stripped->checkpoints.size(); ++i) {
    CHECK(stripped->checkpoints[i].out == layer.index.checkpoints[i].out);
    CHECK(stripped->checkpoints[i].in == layer.index.checkpoints[i].in);
  }
  // In place too; and the bytes form gives the same file.
  REQUIRE(RewriteWithoutZeroRuns(layer.options.index_path, layer.options.index_path).ok());
  CHECK(FileBytes(layer.options.index_path) == bytes);
  REQUIRE(SaveUntrustedGzipIndex(FileBytes(out), "artifact", dir / "again.gzidx").ok());
  CHECK(FileBytes(dir / "again.gzidx") == bytes);
}

TEST_CASE("an index without checksums from elsewhere is refused: it cannot be verified") {
  TempDir dir("ocifs-untrusted-v2");
  Layer layer(dir);
  GzipIndex v2 = layer.index;
  v2.block_size = 0;
  v2.block_crcs.clear();
  REQUIRE(v2.Save(dir / "v2.gzidx").ok());
  REQUIRE(FileBytes(dir / "v2.gzidx")[8] == 2);
  Status st = RewriteWithoutZeroRuns(dir / "v2.gzidx", dir / "side.gzidx");
  CHECK(st.code() == Code::kUnsupported);
  CHECK(st.message().find("has no block checksums (version 1 or 2)") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "side.gzidx"));
  auto parsed = UntrustedGzipIndex(FileBytes(dir / "v2.gzidx"), "artifact of layer-u");
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == Code::kUnsupported);
  CHECK(parsed.status().message().rfind("gzip index artifact of layer-u has no block checksums", 0) == 0);
  // Not an index at all, and a missing file.
  CHECK(SaveUntrustedGzipIndex(std::vector<uint8_t>(100, 7), "junk", dir / "side.gzidx").code() == Code::kCorrupt);
  CHECK(RewriteWithoutZeroRuns(dir / "missing", dir / "side.gzidx").code() == Code::kNotFound);
  CHECK_FALSE(std::filesystem::exists(dir / "side.gzidx"));
}

TEST_CASE("a mount with a stripped index learns zero runs from verified blocks only, and reads right") {
  TempDir dir("ocifs-untrusted-mount");
  Layer layer(dir);
  DecoderOptions options = layer.options;
  options.index_path = dir / "side.gzidx";
  options.segment_cache_bytes = 1 << 20;
  REQUIRE(RewriteWithoutZeroRuns(layer.options.index_path, options.index_path).ok());
  auto counted = std::make_shared<ocifs::testing::CountingSource>(layer.blob);
  auto gz = GzipSource::Open(counted, options);
  REQUIRE(gz.ok());
  REQUIRE((*gz)->loaded_from_file());
  REQUIRE((*gz)->verifies_reads());
  const uint64_t zeros_from = 1 << 20, zeros_to = 7 << 20;
  auto unknown = (*gz)->ExtentAt(zeros_from + (1 << 20));
  REQUIRE(unknown.ok());
  CHECK_FALSE(unknown->hole);  // nothing claimed before it is checked
  std::vector<uint8_t> buf(64 << 10);
  for (uint64_t at = 0; at < layer.data.size(); at += buf.size()) {
    auto n = (*gz)->ReadAt(at, buf);
    REQUIRE(n.ok());
    REQUIRE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(*n), layer.data.begin() + static_cast<ptrdiff_t>(at)));
  }
  // Learnt: the middle of the run is a hole now, and every hole is zeros.
  auto learnt = (*gz)->ExtentAt(zeros_from + (3 << 20));
  REQUIRE(learnt.ok());
  CHECK(learnt->hole);
  for (uint64_t pos = 0; pos < layer.data.size();) {
    auto e = (*gz)->ExtentAt(pos);
    REQUIRE(e.ok());
    REQUIRE(e->length > 0);
    if (e->hole) REQUIRE(AllZero(std::span(layer.data).subspan(e->offset, e->length)));
    pos = e->offset + e->length;
  }
  // Reading the zeros again inflates nothing.
  const int before = counted->reads;
  for (uint64_t at = zeros_from + (1 << 20); at + buf.size() <= zeros_to - (1 << 20); at += buf.size()) {
    REQUIRE((*gz)->ReadAt(at, buf).ok());
    REQUIRE(AllZero(buf));
  }
  CHECK(counted->reads == before);
}

TEST_CASE("a v3 index whose zero runs contradict its checksums is not loaded") {
  TempDir dir("ocifs-contradict");
  Layer layer(dir);
  GzipIndex index = layer.index;
  index.zero_runs = {{0, 1 << 20}};  // data, claimed as zeros
  REQUIRE(index.Save(layer.options.index_path).ok());
  CHECK_FALSE(LoadGzipIndexFor(*layer.blob, layer.options.index_path).has_value());
  REQUIRE(layer.index.Save(layer.options.index_path).ok());
  CHECK(LoadGzipIndexFor(*layer.blob, layer.options.index_path).has_value());
}
