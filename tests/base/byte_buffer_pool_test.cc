#include "base/byte_buffer_pool.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <thread>

using namespace ocifs;

TEST_CASE("a dropped buffer's memory serves the next Take of a size it holds") {
  auto pool = ByteBufferPool::Make(16 << 20);
  const uint8_t* first = nullptr;
  {
    ByteBufferPool::Buffer b = pool->Take(4 << 20);
    REQUIRE(b->size() == (4u << 20));
    first = b->data();
    (*b)[0] = 7;
  }
  REQUIRE(pool->idle_bytes() >= (4u << 20));
  ByteBufferPool::Buffer again = pool->Take(3 << 20);  // smaller: the same memory, no reallocation
  REQUIRE(again->size() == (3u << 20));
  REQUIRE(again->data() == first);
  REQUIRE(pool->idle_bytes() == 0);
  ByteBufferPool::Buffer other = pool->Take(4 << 20);  // none idle: a new one
  REQUIRE(other->data() != first);
}

TEST_CASE("the pool keeps at most its bound idle, and buffers may outlive it") {
  auto pool = ByteBufferPool::Make(5 << 20);
  {
    auto a = pool->Take(4 << 20);
    auto b = pool->Take(4 << 20);
  }
  REQUIRE(pool->idle_bytes() == (5u << 20));  // 4 MiB + 1/8 in whole MiBs; the second did not fit: freed
  ByteBufferPool::Buffer survivor = pool->Take(1 << 20);
  pool.reset();
  (*survivor)[0] = 1;  // still valid; freed when dropped (ASan checks)
  survivor.reset();
}

TEST_CASE("a returned buffer frees smaller idle ones to make room, never larger ones") {
  auto pool = ByteBufferPool::Make(8 << 20);
  {
    auto a = pool->Take(1 << 20);  // 2 MiB capacity
    auto b = pool->Take(2 << 20);  // 3 MiB
  }
  REQUIRE(pool->idle_bytes() == (5u << 20));
  { auto c = pool->Take(4 << 20); }  // 5 MiB: the 2 MiB one makes room
  REQUIRE(pool->idle_bytes() == (8u << 20));
  { auto d = pool->Take(7 << 20); }  // 8 MiB (bound): frees both
  REQUIRE(pool->idle_bytes() == (8u << 20));
  { auto e = pool->Take(9 << 20); }  // larger than the bound: freed itself
  REQUIRE(pool->idle_bytes() == (8u << 20));
}

TEST_CASE("a best fit is chosen among idle buffers, and a const view returns the buffer too") {
  auto pool = ByteBufferPool::Make(64 << 20);
  const uint8_t* small = nullptr;
  const uint8_t* large = nullptr;
  {
    auto s = pool->Take(512 << 10);  // under a MiB: exactly its size
    auto l = pool->Take(8 << 20);
    small = s->data();
    large = l->data();
    std::shared_ptr<const std::vector<uint8_t>> view = std::move(l);  // as a segment cache keeps it
  }
  REQUIRE(pool->Take(256 << 10)->data() == small);
  REQUIRE(pool->Take(6 << 20)->data() == large);
  REQUIRE(pool->Take((512 << 10) + 1)->data() == large);  // the small one cannot hold it: never grown
  auto held = pool->Take(8 << 20);          // the large one, out of the pool
  auto odd = pool->Take((2 << 20) + 100);  // none idle fits: new, 1/8 more rounded up to 3 MiB
  REQUIRE(odd->capacity() == (3u << 20));
}

TEST_CASE("concurrent takes and drops keep every buffer whole") {
  auto pool = ByteBufferPool::Make(8 << 20);
  std::atomic<bool> whole{true};  // Catch2's REQUIRE is not for other threads
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const size_t n = static_cast<size_t>((i % 5 + 1) * 100000 + t);
        auto b = pool->Take(n);
        std::fill(b->begin(), b->end(), static_cast<uint8_t>(t));
        for (size_t k = 0; k < n; k += 4099) {
          if ((*b)[k] != static_cast<uint8_t>(t)) whole = false;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  REQUIRE(whole);
  REQUIRE(pool->idle_bytes() <= (8u << 20));
}
