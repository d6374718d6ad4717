#include "disk/cluster_cache.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

using namespace ocifs;

namespace {

ClusterCache::Loader Bytes(size_t n, uint8_t fill, std::atomic<int>* calls = nullptr) {
  return [=]() -> Result<CachedBuffer> {
    if (calls) ++*calls;
    return CachedBuffer(std::make_shared<std::vector<uint8_t>>(n, fill));
  };
}

}  // namespace

TEST_CASE("cluster cache returns the cached buffer without calling the loader again") {
  ClusterCache cache(1024);
  std::atomic<int> calls{0};
  auto a = cache.GetOrLoad(7, Bytes(100, 1, &calls));
  auto b = cache.GetOrLoad(7, Bytes(100, 2, &calls));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(calls == 1);
  REQUIRE((*b)->at(0) == 1);
  REQUIRE(cache.used_bytes() == 100);
}

TEST_CASE("cluster cache evicts the least recently used buffer beyond its capacity") {
  ClusterCache cache(300);
  REQUIRE(cache.GetOrLoad(1, Bytes(100, 1)).ok());
  REQUIRE(cache.GetOrLoad(2, Bytes(100, 2)).ok());
  REQUIRE(cache.GetOrLoad(3, Bytes(100, 3)).ok());
  REQUIRE(cache.Lookup(1) != nullptr);  // 1 is now the most recent; 2 the oldest
  REQUIRE(cache.GetOrLoad(4, Bytes(100, 4)).ok());
  REQUIRE(cache.Lookup(2) == nullptr);
  REQUIRE(cache.Lookup(1) != nullptr);
  REQUIRE(cache.Lookup(3) != nullptr);
  REQUIRE(cache.Lookup(4) != nullptr);
  REQUIRE(cache.used_bytes() == 300);
  REQUIRE(cache.entries() == 3);
}

TEST_CASE("cluster cache hands out a buffer larger than its capacity without keeping it") {
  ClusterCache cache(50);
  auto big = cache.GetOrLoad(1, Bytes(100, 9));
  REQUIRE(big.ok());
  REQUIRE((*big)->size() == 100);
  REQUIRE(cache.entries() == 0);
  REQUIRE(cache.used_bytes() == 0);
}

TEST_CASE("cluster cache does not keep errors; the next caller loads again") {
  ClusterCache cache(1024);
  auto bad = cache.GetOrLoad(5, []() -> Result<CachedBuffer> { return Corrupt("boom"); });
  REQUIRE_FALSE(bad.ok());
  REQUIRE(bad.status().message() == "boom");
  auto good = cache.GetOrLoad(5, Bytes(10, 1));
  REQUIRE(good.ok());
  REQUIRE(cache.loads() == 2);
}

TEST_CASE("concurrent callers of one key share a single load") {
  ClusterCache cache(1 << 20);
  std::atomic<int> calls{0};
  auto slow = [&]() -> Result<CachedBuffer> {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return CachedBuffer(std::make_shared<std::vector<uint8_t>>(10, 3));
  };
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto r = cache.GetOrLoad(42, slow);
      if (r.ok() && (*r)->at(0) == 3) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  REQUIRE(calls == 1);
  REQUIRE(ok == 8);
}

TEST_CASE("waiters on a failed load all get its error") {
  ClusterCache cache(1 << 20);
  std::atomic<int> calls{0};
  auto failing = [&]() -> Result<CachedBuffer> {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return IoError("disk gone");
  };
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (!cache.GetOrLoad(1, failing).ok()) ++failed;
    });
  }
  for (auto& t : threads) t.join();
  REQUIRE(failed == 4);
  REQUIRE(calls >= 1);
  REQUIRE(calls <= 4);
}
