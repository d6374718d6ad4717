#include "decode/compression.h"

#include <catch2/catch.hpp>

#include "base/memory_source.h"
#include "decode/decoder.h"
#include "testing/layer_test_data.h"
#include "testing/zstd_test_data.h"

using namespace ocifs;

namespace {
Compression Detect(std::vector<uint8_t> bytes) {
  MemorySource blob(std::move(bytes));
  auto c = DetectCompression(blob);
  REQUIRE(c.ok());
  return *c;
}
}  // namespace

TEST_CASE("compression is detected from gzip, zstd and skippable-frame magic bytes") {
  CHECK(Detect({0x1f, 0x8b, 0x08, 0x00, 0, 0}) == Compression::kGzip);
  CHECK(Detect({0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00}) == Compression::kZstd);
  CHECK(Detect({0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}) == Compression::kZstd);
  CHECK(Detect({0x5e, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}) == Compression::kZstd);
}

TEST_CASE("anything without a known magic, including a tar or a short blob, is uncompressed") {
  CHECK(Detect({'d', 'i', 's', 'k', '/', 0}) == Compression::kNone);
  CHECK(Detect({0x60, 0x2a, 0x4d, 0x18}) == Compression::kNone);
  CHECK(Detect({0x28, 0xb5, 0x2f}) == Compression::kNone);
  CHECK(Detect({0x1f}) == Compression::kNone);
  CHECK(Detect({}) == Compression::kNone);
}

TEST_CASE("compression names are none, gzip and zstd") {
  CHECK(CompressionName(Compression::kNone) == "none");
  CHECK(CompressionName(Compression::kGzip) == "gzip");
  CHECK(CompressionName(Compression::kZstd) == "zstd");
}

TEST_CASE("opening an uncompressed blob returns the blob itself") {
  ByteSourcePtr blob = MemorySource::FromString("plain tar bytes");
  auto decoded = OpenDecoded(blob, Compression::kNone, DecoderOptions{});
  REQUIRE(decoded.ok());
  CHECK(decoded->get() == blob.get());
}

TEST_CASE("the head of a compressed blob decompresses to its first bytes") {
  std::vector<uint8_t> data = ocifs::testing::MakeLayerData(1 << 20, 7);
  auto head_of = [&](const std::vector<uint8_t>& blob, Compression c, size_t cut, size_t want) {
    auto got = DecompressHead(std::span(blob.data(), std::min(cut, blob.size())), c, want);
    REQUIRE(got.ok());
    return std::move(got).value();
  };
  std::vector<uint8_t> gz = ocifs::testing::GzipMember(data);
  std::vector<uint8_t> zs = ocifs::testing::CompressZstdFrame(data, {.content_size = false});
  for (auto [blob, c] : {std::pair{&gz, Compression::kGzip}, std::pair{&zs, Compression::kZstd},
                         std::pair{&data, Compression::kNone}}) {
    CAPTURE(CompressionName(c));
    CHECK(CompressionOfMagic(std::span(blob->data(), 4)) == c);
    std::vector<uint8_t> first = head_of(*blob, c, 136 << 10, 512);
    CHECK(first == std::vector<uint8_t>(data.begin(), data.begin() + 512));
    // A head cut short yields what it holds, never more, and what it yields is right.
    std::vector<uint8_t> some = head_of(*blob, c, 2000, 64 << 10);
    CHECK(some.size() <= (64u << 10));
    CHECK(std::equal(some.begin(), some.end(), data.begin()));
  }
  // A short stream, whole: all of it.
  std::vector<uint8_t> small(data.begin(), data.begin() + 100);
  CHECK(head_of(ocifs::testing::GzipMember(small), Compression::kGzip, 1 << 20, 512) == small);
  CHECK(head_of(ocifs::testing::CompressZstdFrame(small, {}), Compression::kZstd, 1 << 20, 512) == small);
}

TEST_CASE("a head that is not the compression it is said to be is corrupt") {
  std::vector<uint8_t> text(4096, 'x');
  CHECK(DecompressHead(text, Compression::kGzip, 512).status().code() == Code::kCorrupt);
  CHECK(DecompressHead(text, Compression::kZstd, 512).status().code() == Code::kCorrupt);
}
