// DecompressCluster's deflate path: libdeflate inflates a whole cluster, and
// every stream it does not decode to exactly one cluster is left to zlib, so
// what qemu's own reader accepts and refuses stays the same.
#include "disk/qcow2_decompress.h"

#include <zlib.h>

#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace ocifs;

namespace {

std::vector<uint8_t> Sample(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i % 7 == 0 ? rng() : i / 97);  // compressible
  return b;
}

// Raw deflate with qemu's parameters (window bits -12).
std::vector<uint8_t> Deflate(const std::vector<uint8_t>& in) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<uint8_t> out(deflateBound(&zs, in.size()));
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace

TEST_CASE("a deflate cluster inflates exactly, with the sector's trailing bytes after its stream") {
  const std::vector<uint8_t> cluster = Sample(64 << 10, 1);
  std::vector<uint8_t> in = Deflate(cluster);
  in.resize((in.size() + 511) / 512 * 512 + 512, 0xA5);  // qemu rounds up; the next bytes are another cluster's
  std::vector<uint8_t> out(cluster.size());
  REQUIRE(DecompressCluster(Qcow2Compression::kDeflate, in, out).ok());
  CHECK(out == cluster);
}

TEST_CASE("a deflate stream longer than the cluster fills it, as qemu reads it") {
  const std::vector<uint8_t> twice = Sample(128 << 10, 2);
  const std::vector<uint8_t> in = Deflate(twice);
  std::vector<uint8_t> out(64 << 10);
  REQUIRE(DecompressCluster(Qcow2Compression::kDeflate, in, out).ok());
  CHECK(std::equal(out.begin(), out.end(), twice.begin()));
}

TEST_CASE("a deflate stream shorter than the cluster, cut off or malformed is corrupt and says so") {
  std::vector<uint8_t> out(64 << 10);
  const std::vector<uint8_t> half = Deflate(Sample(32 << 10, 3));
  Status short_stream = DecompressCluster(Qcow2Compression::kDeflate, half, out);
  CHECK(short_stream.code() == Code::kCorrupt);
  CHECK_THAT(short_stream.message(), Catch::Contains("32768 bytes, less than the 65536-byte cluster"));

  std::vector<uint8_t> cut = Deflate(Sample(64 << 10, 4));
  cut.resize(cut.size() / 2);
  Status truncated = DecompressCluster(Qcow2Compression::kDeflate, cut, out);
  CHECK(truncated.code() == Code::kCorrupt);

  std::vector<uint8_t> junk(600, 0xFF);  // block type 3: invalid
  Status malformed = DecompressCluster(Qcow2Compression::kDeflate, junk, out);
  CHECK(malformed.code() == Code::kCorrupt);
  CHECK_THAT(malformed.message(), Catch::Contains("malformed"));
}
