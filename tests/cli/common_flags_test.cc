#include "cli/common_flags.h"

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

TEST_CASE("tls-verify takes the usual spellings of a boolean") {
  CommonFlags flags;
  flags.tls_verify = "false";
  auto options = ToRegistryOptions(flags);
  REQUIRE(options.ok());
  REQUIRE_FALSE(options->tls_verify);
  flags.tls_verify = "maybe";
  REQUIRE_FALSE(ToRegistryOptions(flags).ok());
}

TEST_CASE("credentials without a colon are refused without echoing them") {
  CommonFlags flags;
  flags.creds = "secretvalue";
  auto options = ToRegistryOptions(flags);
  REQUIRE_FALSE(options.ok());
  REQUIRE(options.status().message().find("secretvalue") == std::string::npos);
}
