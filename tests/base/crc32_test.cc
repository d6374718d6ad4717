// Crc32 (libdeflate) must give zlib's crc32 values: every CRC stored by an
// earlier build (chunk files, kept pieces, indexes) was computed by zlib.
#include "base/crc32.h"

#include <zlib.h>

#include <random>
#include <vector>

#include <catch2/catch.hpp>

using namespace ocifs;

namespace {
uint32_t ZlibCrc(uint32_t crc, const std::vector<uint8_t>& b, size_t from, size_t n) {
  return static_cast<uint32_t>(crc32_z(crc, b.data() + from, n));
}
}  // namespace

TEST_CASE("Crc32 equals zlib's crc32, whole and continued, at every size class") {
  std::mt19937 rng(7);
  std::vector<uint8_t> bytes(3 << 20);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  CHECK(Crc32(std::span<const uint8_t>()) == 0);
  CHECK(Crc32(std::span<const uint8_t>(bytes.data(), 9)) == ZlibCrc(0, bytes, 0, 9));
  for (size_t n : {1ul, 3ul, 63ul, 64ul, 65ul, 4095ul, 65536ul, 1ul << 20, bytes.size()}) {
    INFO("size " << n);
    CHECK(Crc32(std::span<const uint8_t>(bytes.data(), n)) == ZlibCrc(0, bytes, 0, n));
    const size_t half = n / 2;
    const uint32_t first = Crc32(std::span<const uint8_t>(bytes.data(), half));
    CHECK(Crc32(first, std::span<const uint8_t>(bytes.data() + half, n - half)) == ZlibCrc(0, bytes, 0, n));
  }
  // Known value: CRC-32 of "123456789" is 0xCBF43926.
  const uint8_t check[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  CHECK(Crc32(check) == 0xCBF43926u);
}
