#include "decode/compression.h"

#include <catch2/catch.hpp>

#include "base/memory_source.h"
#include "decode/decoder.h"

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
