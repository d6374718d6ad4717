#include "base/size_text.h"

#include <catch2/catch.hpp>

using namespace ocifs;

TEST_CASE("sizes are parsed with binary suffixes") {
  REQUIRE(*ParseSize("4096") == 4096);
  REQUIRE(*ParseSize("512M") == 512ull << 20);
  REQUIRE(*ParseSize("10G") == 10ull << 30);
  REQUIRE(*ParseSize("1.5K") == 1536);
  REQUIRE_FALSE(ParseSize("ten").ok());
  REQUIRE_FALSE(ParseSize("5X").ok());
  REQUIRE_FALSE(ParseSize("-1G").ok());
}
