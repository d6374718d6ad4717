// OpenEstargzLayout with zstd frames: stargz-snapshotter's zstd:chunked
// (`ctr-remote image convert --zstdchunked`), an eStargz TOC in a zstd:chunked
// skippable frame, read through OpenDecoded as any zstd layer.
#include <zstd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "base/little_endian.h"
#include "base/memory_source.h"
#include "decode/decoder.h"
#include "decode/toc_support.h"
#include "decode/zstd_chunked_toc.h"
#include "testing/counting_source.h"
#include "testing/layer_test_data.h"
#include "testing/log_capture.h"
#include "testing/temp_dir.h"
#include "testing/zstd_test_data.h"

using namespace ocifs;
using ocifs::testing::CountingSource;

namespace {

// One zstd frame of `data`, content size left out as Go's writer does.
std::vector<uint8_t> Frame(std::span<const uint8_t> data) {
  return ocifs::testing::CompressZstdFrame(data, {.content_size = false});
}

std::vector<uint8_t> Bytes(size_t n, uint32_t seed) {
  return ocifs::testing::MakeLayerData(n, seed, "estargz zstd chunk header ");
}

// As the estargz package lays a layer out with zstd: the first headers in a
// frame; each chunk starts a frame; a file's last chunk shares its frame(s)
// with the tar padding and the next headers; no end-of-archive blocks; then
// the TOC (eStargz's JSON: offsets, no endOffset) and the footer in skippable frames.
struct StargzZstdBlob {
  std::vector<uint8_t> blob, decoded;
  nlohmann::json toc;
  std::map<std::string, std::string> annotations;

  uint64_t Add(std::vector<uint8_t> data) {
    const uint64_t at = blob.size();
    std::vector<uint8_t> f = Frame(data);
    blob.insert(blob.end(), f.begin(), f.end());
    decoded.insert(decoded.end(), data.begin(), data.end());
    return at;
  }

  StargzZstdBlob() {
    Add(Bytes(1536, 1));  // the landmark's and the disk's headers
    auto c1 = Bytes(70000, 2), c2 = Bytes(100000, 3), c3 = Bytes(30000, 4), small = Bytes(5000, 6);
    const uint64_t o1 = Add(c1), o2 = Add(c2), o3 = Add(c3);
    Add(Bytes(976, 5));  // the last chunk's padding and the next header: a second frame, still its range
    std::vector<uint8_t> small_and_padding = small;
    small_and_padding.resize(small.size() + 120, 0);
    const uint64_t os = Add(small_and_padding);
    std::vector<uint8_t> whole(c1);
    whole.insert(whole.end(), c2.begin(), c2.end());
    whole.insert(whole.end(), c3.begin(), c3.end());
    toc = {{"version", 1},
           {"entries",
            {{{"type", "dir"}, {"name", "disk/"}},
             {{"type", "reg"}, {"name", "disk/disk.img"}, {"size", whole.size()}, {"digest", Sha256Of(whole)},
              {"offset", o1}, {"chunkSize", c1.size()}, {"chunkDigest", Sha256Of(c1)}},
             {{"type", "chunk"}, {"name", "disk/disk.img"}, {"offset", o2}, {"chunkOffset", c1.size()},
              {"chunkSize", c2.size()}, {"chunkDigest", Sha256Of(c2)}},
             {{"type", "chunk"}, {"name", "disk/disk.img"}, {"offset", o3}, {"chunkOffset", c1.size() + c2.size()},
              {"chunkDigest", Sha256Of(c3)}},
             {{"type", "reg"}, {"name", "small"}, {"size", small.size()}, {"offset", os},
              {"digest", Sha256Of(small)}, {"chunkDigest", Sha256Of(small)}}}}};
  }

  // Appends the TOC and the 40-byte footer in skippable frames; sets the annotations.
  void Finish() {
    const std::string json = toc.dump();
    std::vector<uint8_t> compressed(ZSTD_compressBound(json.size()));
    compressed.resize(ZSTD_compress(compressed.data(), compressed.size(), json.data(), json.size(), 3));
    AppendLe<uint32_t>(blob, 0x184D2A50);
    AppendLe<uint32_t>(blob, static_cast<uint32_t>(compressed.size()));
    const uint64_t offset = blob.size();
    blob.insert(blob.end(), compressed.begin(), compressed.end());
    AppendLe<uint32_t>(blob, 0x184D2A50);
    AppendLe<uint32_t>(blob, 40);
    blob.insert(blob.end(), 40, 0);
    annotations["io.containers.zstd-chunked.manifest-position"] =
        std::to_string(offset) + ":" + std::to_string(compressed.size()) + ":" + std::to_string(json.size()) + ":1";
    annotations["io.containers.zstd-chunked.manifest-checksum"] = Sha256Of(compressed);
    annotations["containerd.io/snapshot/stargz/toc.digest"] =
        Sha256Of(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(json.data()), json.size()));
  }
};

DecoderOptions OptionsOf(const StargzZstdBlob& b) {
  DecoderOptions options;
  options.layer_annotations = b.annotations;
  options.background_pass = false;
  return options;
}

}  // namespace

TEST_CASE("a zstd:chunked TOC without endOffset is stargz-snapshotter's, an eStargz TOC") {
  StargzZstdBlob b;
  CHECK(ZstdChunkedTocIsEstargz(b.toc.dump()));
  b.toc["entries"][1]["endOffset"] = 5000;
  CHECK_FALSE(ZstdChunkedTocIsEstargz(b.toc.dump()));
  CHECK_FALSE(ZstdChunkedTocIsEstargz("not json"));
  CHECK_FALSE(ZstdChunkedTocIsEstargz(R"({"version": 1, "entries": [{"type": "dir", "name": "d"}]})"));
}

TEST_CASE("stargz-snapshotter's zstd:chunked layer is read at random through its eStargz TOC") {
  StargzZstdBlob b;
  b.Finish();
  ocifs::testing::LogCapture log;
  ocifs::testing::TempDir tmp;
  DecoderOptions options = OptionsOf(b);
  options.zstd_chunked_toc_path = tmp.path() + "/layer.zstdtoc";
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(b.blob));
  auto decoded = OpenDecoded(counted, Compression::kZstd, options);
  REQUIRE(decoded.ok());
  CHECK(log.Count(spdlog::level::warn, "plain zstd stream") == 0);
  CHECK((*decoded)->access() == ByteSource::Access::kRandom);
  REQUIRE((*decoded)->size() == b.decoded.size());
  // The open read the TOC, the header frame and the last chunks' ranges: not the first two chunks.
  const uint64_t opened = counted->bytes;
  CHECK(opened < b.blob.size() - 120000);
  std::vector<uint8_t> mid(5000);
  REQUIRE(ReadExactly(**decoded, 1536 + 70000 + 500, mid).ok());  // in the second chunk only
  CHECK(std::equal(mid.begin(), mid.end(), b.decoded.begin() + 1536 + 70000 + 500));
  CHECK(counted->bytes - opened < 100000);
  std::vector<uint8_t> all(b.decoded.size());
  REQUIRE(ReadExactly(**decoded, 0, all).ok());
  CHECK(all == b.decoded);

  // A second open takes the TOC from beside the cache and walks only the header frames again.
  auto reopened = std::make_shared<CountingSource>(std::make_shared<MemorySource>(b.blob));
  REQUIRE(OpenDecoded(reopened, Compression::kZstd, options).ok());
  CHECK(reopened->bytes > 0);
  CHECK(reopened->bytes < opened);
}

TEST_CASE("a stargz zstd:chunked chunk that does not match its chunkDigest fails with kDataLoss") {
  StargzZstdBlob b;
  b.toc["entries"][2]["chunkDigest"] = Sha256Of(Bytes(10, 9));
  b.Finish();
  ocifs::testing::LogCapture log;
  auto decoded = OpenDecoded(std::make_shared<MemorySource>(b.blob, "blob B"), Compression::kZstd, OptionsOf(b));
  REQUIRE(decoded.ok());
  std::vector<uint8_t> buf(100);
  auto r = (*decoded)->ReadAt(1536 + 70000 + 10, buf);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kDataLoss);
  CHECK(log.Count(spdlog::level::err, "blob B") == 1);
  CHECK((*decoded)->ReadAt(0, buf).ok());
}

TEST_CASE("a stargz zstd:chunked TOC that cannot be used is read as a plain zstd stream, with one warning") {
  StargzZstdBlob b;
  SECTION("a chunk offset inside a frame") {
    b.toc["entries"][3]["offset"] = b.toc["entries"][3]["offset"].get<uint64_t>() + 3;
  }
  SECTION("an offset past the data") { b.toc["entries"][4]["offset"] = 1 << 30; }
  SECTION("chunks that do not tile the file") { b.toc["entries"][2]["chunkOffset"] = 1; }
  b.Finish();
  ocifs::testing::LogCapture log;
  auto decoded = OpenDecoded(std::make_shared<MemorySource>(b.blob, "blob B"), Compression::kZstd, OptionsOf(b));
  REQUIRE(decoded.ok());
  CHECK(log.Count(spdlog::level::warn, "plain zstd stream") == 1);
  std::vector<uint8_t> all(b.decoded.size());
  REQUIRE(ReadExactly(**decoded, 0, all).ok());
  CHECK(all == b.decoded);
}
