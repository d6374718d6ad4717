#include "cli/common_flags.h"

#include <catch2/catch.hpp>

using namespace ocifs;

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
