#include "base/little_endian.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using namespace ocifs;

TEST_CASE("little-endian appends put the low byte first, to bytes and to strings") {
  std::vector<uint8_t> b;
  AppendLe<uint32_t>(b, 0x11223344u);
  AppendLe<uint64_t>(b, 0x0102030405060708ull);
  CHECK(b == std::vector<uint8_t>{0x44, 0x33, 0x22, 0x11, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01});
  CHECK(LoadLe<uint32_t>(b.data()) == 0x11223344u);
  CHECK(LoadLe<uint64_t>(b.data() + 4) == 0x0102030405060708ull);

  std::string s;
  AppendLeN(s, 0xABCDEFu, 3);
  AppendLeN(s, 0xFFu, 0);
  REQUIRE(s.size() == 3);
  CHECK(static_cast<uint8_t>(s[0]) == 0xEF);
  CHECK(static_cast<uint8_t>(s[2]) == 0xAB);
  CHECK(LoadLeN(reinterpret_cast<const uint8_t*>(s.data()), 3) == 0xABCDEFu);
  CHECK(LoadLeN(reinterpret_cast<const uint8_t*>(s.data()), 2) == 0xCDEFu);
}

TEST_CASE("little-endian stores and loads round-trip at any alignment") {
  uint8_t buf[16] = {};
  StoreLe<uint64_t>(buf + 3, 0xDEADBEEFCAFEF00Dull);
  CHECK(LoadLe<uint64_t>(buf + 3) == 0xDEADBEEFCAFEF00Dull);
  CHECK(LoadLeN(buf + 3, 8) == 0xDEADBEEFCAFEF00Dull);
  CHECK(buf[3] == 0x0D);
  CHECK(buf[2] == 0);
}
