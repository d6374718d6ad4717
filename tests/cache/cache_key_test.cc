#include "cache/cache_key.h"

#include <catch2/catch.hpp>

#include "cache/cache_test_util.h"

using namespace ocifs;
using ocifs::testing::Digest;

TEST_CASE("cache keys accept digests and digests with suffix parts") {
  CHECK(ValidateCacheKey(Digest('0')).ok());
  CHECK(ValidateCacheKey("sha512:" + std::string(128, 'f')).ok());
  CHECK(ValidateCacheKey(Digest('a') + ":zstd-decoded").ok());
  CHECK(ValidateCacheKey(Digest('a') + ":gzip:v2").ok());
}

TEST_CASE("cache keys that could escape the cache directory are rejected") {
  const std::vector<std::string> bad = {
      "",
      "../../etc/passwd",
      "sha256:" + std::string(63, 'a') + "/",
      Digest('a') + "/..",
      Digest('a') + ":..",
      Digest('a') + ":a/b",
      Digest('a') + ":",
      Digest('a') + ":-x",
      Digest('a') + "x",
      "sha256:" + std::string(64, 'A'),
      "sha256:" + std::string(63, 'a'),
      "md5:" + std::string(32, 'a'),
      Digest('a') + ":" + std::string(33, 'x'),
      Digest('a') + std::string("\0x", 2),
  };
  for (const auto& key : bad) {
    INFO(key);
    Status s = ValidateCacheKey(key);
    CHECK(s.code() == Code::kInvalidArgument);
  }
}

TEST_CASE("side file suffixes are single safe name parts") {
  CHECK(ValidateSideSuffix("gzidx").ok());
  CHECK(ValidateSideSuffix("tarindex").ok());
  CHECK_FALSE(ValidateSideSuffix("").ok());
  CHECK_FALSE(ValidateSideSuffix("../x").ok());
  CHECK_FALSE(ValidateSideSuffix("a.b").ok());
  CHECK_FALSE(ValidateSideSuffix("a/b").ok());
}

TEST_CASE("the key hash is 64-bit FNV-1a") {
  CHECK(CacheKeyHash("") == 0xcbf29ce484222325ull);
  CHECK(CacheKeyHash("a") == 0xaf63dc4c8601ec8cull);
  CHECK(CacheKeyHash(Digest('a')) != CacheKeyHash(Digest('b')));
}
