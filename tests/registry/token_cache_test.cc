#include "registry/token_cache.h"

#include <catch2/catch.hpp>

using namespace ocifs;
using namespace std::chrono_literals;

TEST_CASE("token cache keeps tokens per scope and renews before expiry") {
  TokenCache cache;
  auto t0 = TokenCache::Clock::now();
  cache.Put("repository:a:pull", "tok-a", 60s, t0);
  cache.Put("repository:b:pull", "tok-b", 300s, t0);
  CHECK(cache.Get("repository:a:pull", t0) == std::optional<std::string>("tok-a"));
  CHECK(cache.Get("repository:b:pull", t0 + 100s) == std::optional<std::string>("tok-b"));
  CHECK(cache.Get("repository:a:pull", t0 + 49s));
  CHECK_FALSE(cache.Get("repository:a:pull", t0 + 51s));  // 10 s margin
  CHECK_FALSE(cache.Get("repository:c:pull", t0));
  cache.Put("short", "t", 4s, t0);
  CHECK(cache.Get("short", t0 + 2s));
  CHECK_FALSE(cache.Get("short", t0 + 3s));  // margin: a quarter of 4 s
  cache.Invalidate("repository:b:pull");
  CHECK_FALSE(cache.Get("repository:b:pull", t0));
}
