#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/memory_source.h"
#include "decode/decoder.h"
#include "decode/estargz_toc.h"
#include "decode/toc_support.h"
#include "testing/counting_source.h"
#include "testing/log_capture.h"

using namespace ocifs;
using ocifs::testing::CountingSource;

namespace {

constexpr const char* kTocDigestKey = "containerd.io/snapshot/stargz/toc.digest";

std::vector<uint8_t> GzipMember(const std::vector<uint8_t>& data) {
  z_stream s{};
  REQUIRE(deflateInit2(&s, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<uint8_t> out(deflateBound(&s, data.size()) + 64);
  s.next_in = const_cast<Bytef*>(data.data());
  s.avail_in = static_cast<uInt>(data.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&s, Z_FINISH) == Z_STREAM_END);
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) b = static_cast<uint8_t>((x = x * 1103515245u + 12345u) >> 24);
  return v;
}

void Append(std::vector<uint8_t>& to, const std::vector<uint8_t>& from) { to.insert(to.end(), from.begin(), from.end()); }

std::vector<uint8_t> Footer(uint64_t toc_offset) {
  char sub[32];
  std::snprintf(sub, sizeof sub, "%016llxSTARGZ", static_cast<unsigned long long>(toc_offset));
  std::string f("\x1f\x8b\x08\x04\0\0\0\0\0\xff\x1a\0SG\x16\0", 16);
  f += std::string(sub, 22);
  f += std::string("\x01\0\0\xff\xff\0\0\0\0\0\0\0\0", 13);
  return std::vector<uint8_t>(f.begin(), f.end());
}

// A small eStargz blob: a file of three chunks, a file of one, "headers" of
// made-up bytes between them (the decoder does not read tar).
struct EstargzBlob {
  std::vector<uint8_t> blob, decoded, a, b;
  nlohmann::json toc;
  uint64_t toc_offset = 0;
  std::string toc_digest;

  void Build(int tamper_chunk = -1) {
    a = Pattern(2500, 1), b = Pattern(700, 2);
    std::vector<uint8_t> member = Pattern(512, 3);
    blob.clear(), decoded = member;
    toc = {{"version", 1}, {"entries", nlohmann::json::array({{{"name", "d/"}, {"type", "dir"}}})}};
    int chunk_no = 0;
    auto chunk = [&](const std::string& name, const std::vector<uint8_t>& file, size_t from, size_t n, bool first) {
      Append(blob, GzipMember(member));
      std::vector<uint8_t> bytes(file.begin() + from, file.begin() + from + n);
      nlohmann::json e = {{"name", name}, {"type", first ? "reg" : "chunk"}, {"offset", blob.size()},
                          {"chunkDigest", Sha256Of(bytes)}};
      if (first) e["size"] = file.size();
      if (from) e["chunkOffset"] = from;
      if (n == 1000) e["chunkSize"] = n;
      toc["entries"].push_back(e);
      if (chunk_no++ == tamper_chunk) bytes[7] ^= 1;
      member = bytes;
      Append(decoded, bytes);
    };
    chunk("d/a", a, 0, 1000, true), chunk("d/a", a, 1000, 1000, false), chunk("d/a", a, 2000, 500, false);
    std::vector<uint8_t> pad_and_header(12 + 512, 9);
    Append(member, pad_and_header), Append(decoded, pad_and_header);
    chunk("d/b", b, 0, 700, true);
    std::vector<uint8_t> pad(324, 0);
    Append(member, pad), Append(decoded, pad);
    Append(blob, GzipMember(member));
    toc_offset = blob.size();
    std::string json = toc.dump();
    toc_digest = Sha256Of(std::span(reinterpret_cast<const uint8_t*>(json.data()), json.size()));
    std::vector<uint8_t> tar(512, 0);
    std::snprintf(reinterpret_cast<char*>(tar.data()), 100, "stargz.index.json");
    std::snprintf(reinterpret_cast<char*>(tar.data()) + 124, 12, "%011o", static_cast<unsigned>(json.size()));
    tar.insert(tar.end(), json.begin(), json.end());
    tar.resize(tar.size() + (512 - json.size() % 512) % 512 + 1024, 0);
    Append(blob, GzipMember(tar)), Append(decoded, tar);
    Append(blob, Footer(toc_offset));
  }
  DecoderOptions Options() const {
    DecoderOptions o;
    o.background_pass = false;
    o.layer_annotations[kTocDigestKey] = toc_digest;
    return o;
  }
};

}  // namespace

TEST_CASE("the eStargz footer gives the TOC's offset; a malformed one is named") {
  auto f = Footer(1234);
  REQUIRE(f.size() == kEstargzFooterSize);
  auto off = ParseEstargzFooter(f, 5000, "L");
  REQUIRE(off.ok());
  CHECK(*off == 1234);
  CHECK(ParseEstargzFooter(f, 1200, "L").status().message().find("outside the blob") != std::string::npos);
  f[33] = 'X';  // "STARGZ" -> "SXARGZ"
  CHECK(ParseEstargzFooter(f, 5000, "L").status().message().find("eStargz footer") != std::string::npos);
}

TEST_CASE("OpenDecoded reads an eStargz layer at random through its TOC, each chunk alone") {
  EstargzBlob e;
  e.Build();
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(e.blob));
  auto decoded = OpenDecoded(counted, Compression::kGzip, e.Options());
  REQUIRE(decoded.ok());
  REQUIRE((*decoded)->size() == e.decoded.size());
  CHECK((*decoded)->Describe().rfind("gzip(", 0) == 0);
  // The second chunk of d/a: 512 header bytes + 1000 in.
  const uint64_t before = counted->bytes;
  std::vector<uint8_t> got(1000);
  REQUIRE(ReadExactly(**decoded, 1512, got).ok());
  CHECK(std::equal(got.begin(), got.end(), e.a.begin() + 1000));
  CHECK(counted->bytes - before < 1200);  // that chunk's member, not the layer
  std::vector<uint8_t> all(e.decoded.size());
  REQUIRE(ReadExactly(**decoded, 0, all).ok());
  CHECK(all == e.decoded);
}

TEST_CASE("an eStargz chunk that does not match its chunkDigest fails with kDataLoss, others read") {
  EstargzBlob e;
  e.Build(/*tamper_chunk=*/1);
  auto decoded = OpenDecoded(std::make_shared<MemorySource>(e.blob), Compression::kGzip, e.Options());
  REQUIRE(decoded.ok());
  std::vector<uint8_t> got(100);
  auto bad = (*decoded)->ReadAt(1600, got);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kDataLoss);
  REQUIRE(ReadExactly(**decoded, 600, got).ok());  // chunk 0
  CHECK(std::equal(got.begin(), got.end(), e.a.begin() + 88));
}

TEST_CASE("an eStargz layer whose TOC is not the annotated one is read as plain gzip, exactly") {
  EstargzBlob e;
  e.Build();
  DecoderOptions o = e.Options();
  o.layer_annotations[kTocDigestKey] = Sha256Of({});
  ocifs::testing::LogCapture log;
  auto decoded = OpenDecoded(std::make_shared<MemorySource>(e.blob), Compression::kGzip, o);
  REQUIRE(decoded.ok());
  std::vector<uint8_t> all(e.decoded.size());
  REQUIRE(ReadExactly(**decoded, 0, all).ok());
  CHECK(all == e.decoded);
  CHECK(log.Count(spdlog::level::warn, "digest mismatch") == 1);
  CHECK(log.Count(spdlog::level::warn, "plain gzip stream") == 1);
}

TEST_CASE("the eStargz TOC parser rejects chunks that do not tile their file or lie past the TOC") {
  EstargzBlob e;
  e.Build();
  auto parse = [&](const nlohmann::json& toc) { return ParseEstargzToc(toc.dump(), e.toc_offset, "L"); };
  auto ok = parse(e.toc);
  REQUIRE(ok.ok());
  REQUIRE(ok->chunks.size() == 4);
  CHECK(ok->chunks[2].last_of_file);
  CHECK_FALSE(ok->chunks[1].last_of_file);
  CHECK(ok->chunks[2].size == 500);
  nlohmann::json t = e.toc;
  t["entries"][2]["chunkOffset"] = 1001;
  CHECK(parse(t).status().message().find("do not tile") != std::string::npos);
  t = e.toc;
  t["entries"][3]["offset"] = e.toc_offset;
  CHECK(parse(t).status().message().find("outside the layer's data") != std::string::npos);
  t = e.toc;
  t["entries"][2]["innerOffset"] = 5;
  CHECK(parse(t).status().message().find("innerOffset") != std::string::npos);
  t = e.toc;
  t["version"] = 2;
  CHECK(parse(t).status().code() == Code::kUnsupported);
}
