#include <zstd.h>

#include <catch2/catch.hpp>
#include <tuple>
#include <nlohmann/json.hpp>

#include "base/little_endian.h"
#include "base/memory_source.h"
#include "decode/decoder.h"
#include "decode/zstd_chunked_frames.h"
#include "decode/zstd_chunked_toc.h"
#include "decode/zstd_frame_file.h"
#include "base/whole_file.h"
#include "testing/counting_source.h"
#include "testing/layer_test_data.h"
#include "testing/log_capture.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using ocifs::testing::CountingSource;

namespace {

constexpr const char* kPositionKey = "io.containers.zstd-chunked.manifest-position";
constexpr const char* kChecksumKey = "io.containers.zstd-chunked.manifest-checksum";

// One frame, as Go's zstd writer makes them: content size left out unless `sized`.
std::vector<uint8_t> Frame(std::span<const uint8_t> data, bool sized) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  std::vector<uint8_t> out(ZSTD_compressBound(data.size()) + 64);
  if (sized) ZSTD_CCtx_setPledgedSrcSize(cctx, data.size());
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  REQUIRE(ZSTD_compressStream2(cctx, &ob, &in, ZSTD_e_end) == 0);
  ZSTD_freeCCtx(cctx);
  out.resize(ob.pos);
  return out;
}

// A zstd:chunked blob of a made-up tar: header frames around one file in three
// chunks (the last all zeros) and one small file in a single span, then the
// TOC and the footer in skippable frames. `decoded` is what it decompresses to.
struct ChunkedBlob {
  std::vector<uint8_t> blob, decoded;
  nlohmann::json toc;
  std::map<std::string, std::string> annotations;
  std::vector<std::pair<uint64_t, uint64_t>> payloads;  // compressed [begin, end)

  void Add(std::span<const uint8_t> data, bool sized) {
    std::vector<uint8_t> f = Frame(data, sized);
    blob.insert(blob.end(), f.begin(), f.end());
    decoded.insert(decoded.end(), data.begin(), data.end());
  }
  uint64_t AddPayload(std::span<const uint8_t> data, bool sized) {
    uint64_t at = blob.size();
    Add(data, sized);
    payloads.emplace_back(at, blob.size());
    return at;
  }
  // Seals it: appends the TOC (as given, or `toc` dumped) and sets the annotations.
  void Finish(std::string json = "") {
    if (json.empty()) json = toc.dump();
    std::vector<uint8_t> compressed(ZSTD_compressBound(json.size()));
    compressed.resize(ZSTD_compress(compressed.data(), compressed.size(), json.data(), json.size(), 3));
    ocifs::AppendLe<uint32_t>(blob, 0x184D2A50);
    ocifs::AppendLe<uint32_t>(blob, static_cast<uint32_t>(compressed.size()));
    const uint64_t offset = blob.size();
    blob.insert(blob.end(), compressed.begin(), compressed.end());
    ocifs::AppendLe<uint32_t>(blob, 0x184D2A50);  // the footer: offsets we do not read
    ocifs::AppendLe<uint32_t>(blob, 40);
    blob.insert(blob.end(), 40, 0);
    annotations[kPositionKey] = std::to_string(offset) + ":" + std::to_string(compressed.size()) + ":" +
                                std::to_string(json.size()) + ":1";
    annotations[kChecksumKey] = Sha256Of(compressed);
  }
};

std::vector<uint8_t> TocBytes(size_t n, uint32_t seed) {
  return ocifs::testing::MakeLayerData(n, seed, "toc chunk frame digest offset ");
}

ChunkedBlob MakeBlob() {
  ChunkedBlob b;
  b.Add(TocBytes(1024, 1), false);  // two tar headers
  auto c1 = TocBytes(70000, 2), c2 = TocBytes(100000, 3), c3 = std::vector<uint8_t>(1 << 20, 0);
  uint64_t o1 = b.AddPayload(c1, false), o2 = b.AddPayload(c2, true), o3 = b.AddPayload(c3, false);
  const uint64_t file_end = b.blob.size();
  b.Add(TocBytes(976, 4), false);  // padding + the next header
  auto small = TocBytes(5000, 5);
  uint64_t os = b.AddPayload(small, false);
  const uint64_t small_end = b.blob.size();
  b.Add(std::vector<uint8_t>(1024 + 120, 0), false);  // padding + end of archive
  std::vector<uint8_t> whole(c1);
  whole.insert(whole.end(), c2.begin(), c2.end());
  whole.insert(whole.end(), c3.begin(), c3.end());
  b.toc = {{"version", 1},
           {"entries",
            {{{"type", "dir"}, {"name", "disk/"}},
             {{"type", "reg"}, {"name", "disk/disk.img"}, {"size", whole.size()}, {"digest", Sha256Of(whole)},
              {"offset", o1}, {"endOffset", file_end}, {"chunkSize", c1.size()}, {"chunkDigest", Sha256Of(c1)}},
             {{"type", "chunk"}, {"name", "disk/disk.img"}, {"offset", o2}, {"chunkSize", c2.size()},
              {"chunkOffset", c1.size()}, {"chunkDigest", Sha256Of(c2)}},
             {{"type", "chunk"}, {"name", "disk/disk.img"}, {"offset", o3}, {"chunkSize", c3.size()},
              {"chunkOffset", c1.size() + c2.size()}, {"chunkDigest", Sha256Of(c3)}, {"chunkType", "zeros"}},
             {{"type", "reg"}, {"name", "small"}, {"size", small.size()}, {"digest", Sha256Of(small)},
              {"offset", os}, {"endOffset", small_end}},
             {{"type", "reg"}, {"name", "empty"}},
             {{"type", "symlink"}, {"name", "link"}, {"linkName", "small"}}}}};
  return b;
}

ZstdChunkedPosition PositionOf(const ChunkedBlob& b) {
  auto p = ZstdChunkedPositionOf(b.annotations, b.blob.size(), "layer");
  REQUIRE(p.ok());
  REQUIRE(p->has_value());
  return **p;
}

std::span<const uint8_t> Framed(const ChunkedBlob& b, const ZstdChunkedPosition& p) {
  return std::span<const uint8_t>(b.blob).subspan(p.offset - 8, p.length + 8);
}

// MakeBlob, finished, with its TOC position and decoded TOC.
std::tuple<ChunkedBlob, ZstdChunkedPosition, ZstdChunkedToc> SealedBlob() {
  ChunkedBlob b = MakeBlob();
  b.Finish();
  ZstdChunkedPosition p = PositionOf(b);
  auto toc = DecodeZstdChunkedToc(Framed(b, p), p, "layer");
  REQUIRE(toc.ok());
  return {std::move(b), p, std::move(*toc)};
}

// Options that open `b` as a zstd:chunked layer, its TOC and frame table saved in `tmp`.
DecoderOptions SavingOptions(const ChunkedBlob& b, const ocifs::testing::TempDir& tmp) {
  DecoderOptions options;
  options.layer_annotations = b.annotations;
  options.zstd_chunked_toc_path = tmp.path() + "/layer.zstdtoc";
  options.frame_table_path = tmp.path() + "/layer.zstdframes";
  return options;
}

Result<ZstdChunkedToc> Parse(const nlohmann::json& toc, uint64_t data_end = 1 << 30) {
  return ParseZstdChunkedToc(toc.dump(), data_end, "layer L");
}

}  // namespace

TEST_CASE("a zstd:chunked manifest position is read from either annotation spelling and bounded by the blob") {
  std::map<std::string, std::string> a{{kPositionKey, "1000:200:900:1"}, {kChecksumKey, Sha256Of({})}};
  auto p = ZstdChunkedPositionOf(a, 2000, "layer");
  REQUIRE(p.ok());
  REQUIRE(p->has_value());
  CHECK((*p)->offset == 1000);
  CHECK((*p)->length == 200);
  CHECK((*p)->uncompressed == 900);
  std::map<std::string, std::string> github{{"io.github.containers.zstd-chunked.manifest-position", "8:1:1:1"},
                                           {"io.github.containers.zstd-chunked.manifest-checksum", Sha256Of({})}};
  CHECK(ZstdChunkedPositionOf(github, 9, "layer")->has_value());
  CHECK_FALSE(ZstdChunkedPositionOf({}, 2000, "layer")->has_value());

  for (const char* bad : {"1000:200:900", "1000:200:900:2", "x:1:1:1", "1000:200:900:1:", "1900:200:900:1",
                          "4:1:1:1", "1000:0:900:1", "1000:200:0:1", "1000:-1:900:1", "99999999999999999999:1:1:1"}) {
    a[kPositionKey] = bad;
    auto r = ZstdChunkedPositionOf(a, 2000, "layer sha256:ab");
    INFO(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kCorrupt);
    CHECK(r.status().message().find("layer sha256:ab") != std::string::npos);
  }
  a[kPositionKey] = "1000:200:900:1";
  a.erase(kChecksumKey);
  CHECK(ZstdChunkedPositionOf(a, 2000, "layer").status().message().find("checksum") != std::string::npos);
}

TEST_CASE("a zstd:chunked TOC decodes to its payload spans, sorted, with their digests") {
  auto [b, p, toc] = SealedBlob();
  CHECK(toc.data_end == p.offset - 8);
  REQUIRE(toc.spans.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(toc.spans[i].in_offset == b.payloads[i].first);
    CHECK(toc.spans[i].in_size == b.payloads[i].second - b.payloads[i].first);
  }
  CHECK(toc.spans[2].out_size == (1u << 20));
  CHECK(toc.spans[3].out_size == 5000);
}

TEST_CASE("a truncated, bit-flipped or misplaced zstd:chunked TOC is refused, naming the layer") {
  ChunkedBlob b = MakeBlob();
  b.Finish();
  ZstdChunkedPosition p = PositionOf(b);
  std::vector<uint8_t> framed(Framed(b, p).begin(), Framed(b, p).end());

  auto truncated = DecodeZstdChunkedToc(std::span<const uint8_t>(framed).first(framed.size() - 1), p, "layer L");
  CHECK(truncated.status().code() == Code::kCorrupt);

  std::vector<uint8_t> flipped = framed;
  flipped[framed.size() / 2] ^= 0x10;
  auto r = DecodeZstdChunkedToc(flipped, p, "layer L");
  CHECK(r.status().code() == Code::kCorrupt);
  CHECK(r.status().message().find("layer L") != std::string::npos);
  CHECK(r.status().message().find("checksum mismatch") != std::string::npos);

  ZstdChunkedPosition shifted = p;
  shifted.offset -= 1;
  auto moved = DecodeZstdChunkedToc(std::span<const uint8_t>(b.blob).subspan(shifted.offset - 8, p.length + 8),
                                    shifted, "layer L");
  CHECK(moved.status().message().find("skippable frame") != std::string::npos);

  ZstdChunkedPosition wrong_size = p;
  wrong_size.uncompressed += 1;
  CHECK(DecodeZstdChunkedToc(framed, wrong_size, "layer L").status().code() == Code::kCorrupt);
}

TEST_CASE("bad JSON in a zstd:chunked TOC is refused even when its checksum holds") {
  for (std::string json : {std::string("{\"version\":1,\"entries\":["), std::string("[1,2]"),
                           std::string("{\"version\":1}"), std::string(100000, '[')}) {
    ChunkedBlob b = MakeBlob();
    b.Finish(json);
    ZstdChunkedPosition p = PositionOf(b);
    auto r = DecodeZstdChunkedToc(Framed(b, p), p, "layer L");
    INFO(json.substr(0, 40));
    CHECK(r.status().code() == Code::kCorrupt);
  }
  ChunkedBlob v2 = MakeBlob();
  v2.toc["version"] = 2;
  v2.Finish();
  ZstdChunkedPosition p = PositionOf(v2);
  CHECK(DecodeZstdChunkedToc(Framed(v2, p), p, "layer L").status().code() == Code::kUnsupported);
}

TEST_CASE("a zstd:chunked TOC whose entries leave the blob, overlap or do not tile their file is refused") {
  const nlohmann::json good = MakeBlob().toc;
  REQUIRE(Parse(good).ok());
  auto refused = [](const nlohmann::json& toc, uint64_t data_end = 1 << 30) {
    auto r = Parse(toc, data_end);
    return !r.ok() && r.status().code() == Code::kCorrupt && r.status().message().find("layer L") != std::string::npos;
  };
  auto entries = [&](auto&& edit) {
    nlohmann::json t = good;
    edit(t["entries"]);
    return t;
  };
  CHECK(refused(good, 1000));  // past the data's end
  CHECK(refused(entries([](auto& e) { e[4]["offset"] = e[1]["offset"].template get<uint64_t>() + 10; })));  // overlap
  CHECK(refused(entries([](auto& e) { e[2]["offset"] = e[3]["offset"]; })));  // chunks out of order
  CHECK(refused(entries([](auto& e) { e[2]["chunkOffset"] = 1; })));          // a hole in the file
  CHECK(refused(entries([](auto& e) { e[1]["size"] = 1; })));                 // chunks past its size
  CHECK(refused(entries([](auto& e) { e[3]["chunkDigest"] = "md5:00"; })));
  CHECK(refused(entries([](auto& e) { e[4]["offset"] = -5; })));
  CHECK(refused(entries([](auto& e) { e[4]["endOffset"] = "many"; })));
  CHECK(refused(entries([](auto& e) { e[0] = {{"type", "chunk"}, {"name", "x"}}; })));
  CHECK(refused(entries([](auto& e) { e[0] = 7; })));
  // The same content listed twice (two names, one payload) is one span.
  auto twice = Parse(entries([](auto& e) {
    auto copy = e[4];
    copy["name"] = "again";
    e.push_back(copy);
  }));
  REQUIRE(twice.ok());
  CHECK(twice->spans.size() == 4);
}

TEST_CASE("the frame table of a zstd:chunked blob tiles its output, the TOC's digests on the payload frames") {
  auto [b, p, toc] = SealedBlob();
  MemorySource blob(b.blob);
  auto frames = BuildZstdChunkedFrames(blob, toc, 32 << 20, "layer");
  REQUIRE(frames.ok());
  REQUIRE(frames->frames.size() == 7);  // header, 3 chunks, gap, small file, end
  uint64_t out = 0;
  for (size_t i = 0; i < frames->frames.size(); ++i) {
    CHECK(frames->frames[i].out_offset == out);
    out += frames->frames[i].out_size;
    CHECK(frames->digests[i].empty() == (i == 0 || i == 4 || i == 6));
  }
  CHECK(out == b.decoded.size());

  // A payload said to start one byte late leaves a gap that is not whole frames.
  ZstdChunkedToc lying = toc;
  lying.spans[1].in_offset += 1;
  lying.spans[1].in_size -= 1;
  auto r = BuildZstdChunkedFrames(blob, lying, 32 << 20, "layer L");
  CHECK(r.status().code() == Code::kCorrupt);
  CHECK(r.status().message().find("layer L") != std::string::npos);
  // A chunk over the frame limit is refused rather than decoded whole per read.
  CHECK(BuildZstdChunkedFrames(blob, toc, 512 << 10, "layer").status().code() == Code::kCorrupt);
}

TEST_CASE("OpenDecoded reads a zstd:chunked layer at random through its TOC, saved for the next open") {
  ChunkedBlob b = MakeBlob();
  b.Finish();
  ocifs::testing::TempDir tmp;
  DecoderOptions options = SavingOptions(b, tmp);
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(b.blob));
  auto decoded = OpenDecoded(counted, Compression::kZstd, options);
  REQUIRE(decoded.ok());
  CHECK((*decoded)->access() == ByteSource::Access::kRandom);
  REQUIRE((*decoded)->size() == b.decoded.size());
  // The open read the TOC and the gaps, not the chunks.
  CHECK(counted->bytes < 64 << 10);
  const uint64_t before = counted->bytes;
  std::vector<uint8_t> tail(3000);
  REQUIRE(ReadExactly(**decoded, b.decoded.size() - 3000, tail).ok());
  CHECK(std::equal(tail.begin(), tail.end(), b.decoded.end() - 3000));
  CHECK(counted->bytes - before < 64 << 10);
  std::vector<uint8_t> all(b.decoded.size());
  REQUIRE(ReadExactly(**decoded, 0, all).ok());
  CHECK(all == b.decoded);

  // A second open loads both from the files: it reads nothing of the blob.
  auto again_counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(b.blob));
  auto again = OpenDecoded(again_counted, Compression::kZstd, options);
  REQUIRE(again.ok());
  CHECK(again_counted->bytes == 0);
  REQUIRE(ReadExactly(**again, 0, all).ok());
  CHECK(all == b.decoded);
}

TEST_CASE("a saved zstd:chunked TOC or frame table that is not this layer's is fetched and built again") {
  ChunkedBlob b = MakeBlob();
  b.Finish();
  ocifs::testing::TempDir tmp;
  DecoderOptions options = SavingOptions(b, tmp);
  REQUIRE(WriteFileAtomically(options.zstd_chunked_toc_path, std::string(100, 'x')).ok());
  REQUIRE(ZstdFrameFile::Write(options.frame_table_path, b.blob.size(), {ZstdFrame(0, 10, 0, 10)}).ok());
  auto decoded = OpenDecoded(std::make_shared<MemorySource>(b.blob), Compression::kZstd, options);
  REQUIRE(decoded.ok());
  std::vector<uint8_t> all(b.decoded.size());
  REQUIRE(ReadExactly(**decoded, 0, all).ok());
  CHECK(all == b.decoded);
  // Both were replaced by this layer's: the next open reads nothing.
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(b.blob));
  REQUIRE(OpenDecoded(counted, Compression::kZstd, options).ok());
  CHECK(counted->bytes == 0);
}

TEST_CASE("a zstd:chunked chunk whose bytes do not match its TOC digest fails with kDataLoss, logged once") {
  ChunkedBlob b = MakeBlob();
  b.toc["entries"][2]["chunkDigest"] = Sha256Of(TocBytes(10, 9));
  b.Finish();
  ocifs::testing::LogCapture log;
  DecoderOptions options;
  options.layer_annotations = b.annotations;
  auto decoded = OpenDecoded(std::make_shared<MemorySource>(b.blob, "blob B"), Compression::kZstd, options);
  REQUIRE(decoded.ok());
  std::vector<uint8_t> buf(100);
  for (int i = 0; i < 3; ++i) {
    auto r = (*decoded)->ReadAt(1024 + 70000 + 10, buf);  // in the second chunk
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kDataLoss);
  }
  CHECK(log.Count(spdlog::level::err, "blob B") == 1);
  CHECK((*decoded)->ReadAt(0, buf).ok());  // the other chunks still read
}

TEST_CASE("a zstd:chunked layer whose TOC cannot be used is read as a plain zstd stream, with one warning") {
  ChunkedBlob b = MakeBlob();
  b.Finish();
  SECTION("a TOC whose checksum is wrong") { b.annotations[kChecksumKey] = Sha256Of(b.decoded); }
  SECTION("a position that is not one") { b.annotations[kPositionKey] = "12:34"; }
  SECTION("a TOC that misplaces a payload after a gap") {
    ChunkedBlob shifted = MakeBlob();
    shifted.toc["entries"][4]["offset"] = shifted.toc["entries"][4]["offset"].get<uint64_t>() + 1;
    shifted.Finish();
    b = shifted;
  }
  ocifs::testing::LogCapture log;
  DecoderOptions options;
  options.layer_annotations = b.annotations;
  options.background_pass = false;
  auto decoded = OpenDecoded(std::make_shared<MemorySource>(b.blob, "blob B"), Compression::kZstd, options);
  REQUIRE(decoded.ok());
  CHECK(log.Count(spdlog::level::warn, "plain zstd stream") == 1);
  std::vector<uint8_t> all(b.decoded.size());
  REQUIRE(ReadExactly(**decoded, 0, all).ok());
  CHECK(all == b.decoded);
}

TEST_CASE("a zstd:chunked TOC that misplaces a boundary between two chunks fails their reads, never their bytes") {
  ChunkedBlob b = MakeBlob();
  b.toc["entries"][2]["offset"] = b.toc["entries"][2]["offset"].get<uint64_t>() + 1;
  b.Finish();
  DecoderOptions options;
  options.layer_annotations = b.annotations;
  auto decoded = OpenDecoded(std::make_shared<MemorySource>(b.blob), Compression::kZstd, options);
  REQUIRE(decoded.ok());
  std::vector<uint8_t> buf(100);
  CHECK_FALSE((*decoded)->ReadAt(1024 + 10, buf).ok());
  CHECK_FALSE((*decoded)->ReadAt(1024 + 70000 + 10, buf).ok());
  CHECK((*decoded)->ReadAt(1024 + 70000 + 100000 + 10, buf).ok());
}
