#include "cache/lru_policy.h"

#include <catch2/catch.hpp>

#include "cache/cache_test_util.h"

using namespace ocifs;
using ocifs::testing::kKey;

TEST_CASE("lru policy chooses the least recent victims until enough bytes are freed") {
  std::vector<LruPolicy::Candidate> c = {{50, 10}, {10, 10}, {40, 10}, {20, 10}, {30, 10}};
  CHECK(LruPolicy::ChooseVictims(c, 25) == std::vector<size_t>{1, 3, 4});
  CHECK(LruPolicy::ChooseVictims(c, 0).empty());
  CHECK(LruPolicy::ChooseVictims(c, 1000).size() == 5);
}

TEST_CASE("lru policy asks for an mtime refresh at most once per interval per chunk") {
  LruPolicy lru(100, 1000);
  CHECK(lru.Use(kKey, 1, 10, false));        // unknown: refresh
  CHECK_FALSE(lru.Use(kKey, 1, 500, false));  // within the interval
  CHECK(lru.Use(kKey, 1, 1010, false));
  CHECK_FALSE(lru.Use(kKey, 2, 10, true));    // just written: its mtime is fresh
  CHECK_FALSE(lru.Use(kKey, 2, 900, false));
  CHECK(lru.LastUse(kKey, 1) == 1010);
  CHECK(lru.LastUse(kKey, 3) == 0);
  lru.Forget(kKey, 1);
  CHECK(lru.LastUse(kKey, 1) == 0);
}

TEST_CASE("lru policy forgets its least recent chunks beyond its capacity") {
  LruPolicy lru(3, 1000);
  for (uint64_t i = 0; i < 4; ++i) (void)lru.Use(kKey, i, 100 + int64_t(i), false);
  (void)lru.Use(kKey, 1, 200, false);
  (void)lru.Use(kKey, 9, 300, false);  // pushes out the least recent: 2
  CHECK(lru.tracked() == 3);
  CHECK(lru.LastUse(kKey, 2) == 0);
  CHECK(lru.LastUse(kKey, 1) == 200);
  CHECK(lru.LastUse(kKey, 3) == 103);
}
