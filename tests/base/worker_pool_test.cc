#include "base/worker_pool.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

using namespace ocifs;

TEST_CASE("ParallelFor runs every index exactly once") {
  for (size_t threads : {0, 1, 3}) {
    WorkerPool pool(threads);
    for (size_t n : {0, 1, 2, 7, 100}) {
      std::vector<std::atomic<int>> hits(n);
      Status s = pool.ParallelFor(n, [&](size_t i) {
        hits[i].fetch_add(1);
        return Status::Ok();
      });
      REQUIRE(s.ok());
      for (size_t i = 0; i < n; ++i) REQUIRE(hits[i].load() == 1);
    }
  }
}

TEST_CASE("ParallelFor spreads pieces over the caller and the workers") {
  WorkerPool pool(2);
  std::mutex mu;
  std::set<std::thread::id> seen;
  std::atomic<int> running{0}, most{0};
  Status s = pool.ParallelFor(3, [&](size_t) {
    int now = running.fetch_add(1) + 1;
    for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {}
    {
      std::lock_guard lock(mu);
      seen.insert(std::this_thread::get_id());
    }
    // Wait (up to 10 s) until all three pieces run at once.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (most.load() < 3 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Status::Ok();
  });
  REQUIRE(s.ok());
  REQUIRE(seen.size() == 3);
  REQUIRE(seen.count(std::this_thread::get_id()) == 1);
  REQUIRE(most.load() == 3);
}

TEST_CASE("ParallelFor returns the error of the lowest failing index after all pieces ran") {
  WorkerPool pool(2);
  std::atomic<int> ran{0};
  Status s = pool.ParallelFor(10, [&](size_t i) {
    ran.fetch_add(1);
    if (i == 7) return Corrupt("seven");
    if (i == 3) return IoError("three");
    return Status::Ok();
  });
  REQUIRE(ran.load() == 10);
  REQUIRE(s.code() == Code::kIoError);
  REQUIRE(s.message() == "three");
}

TEST_CASE("nested ParallelFor calls finish even when every worker is busy") {
  WorkerPool pool(1);
  std::atomic<int> leaves{0};
  Status s = pool.ParallelFor(4, [&](size_t) {
    return pool.ParallelFor(4, [&](size_t) {
      return pool.ParallelFor(3, [&](size_t) {
        leaves.fetch_add(1);
        return Status::Ok();
      });
    });
  });
  REQUIRE(s.ok());
  REQUIRE(leaves.load() == 4 * 4 * 3);
}

TEST_CASE("many callers share one pool") {
  WorkerPool pool(2);
  std::atomic<uint64_t> sum{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 6; ++t) {
    callers.emplace_back([&] {
      for (int round = 0; round < 50; ++round) {
        Status s = pool.ParallelFor(5, [&](size_t i) {
          sum.fetch_add(i + 1);
          return Status::Ok();
        });
        if (!s.ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : callers) t.join();
  REQUIRE(failures.load() == 0);
  REQUIRE(sum.load() == 6u * 50u * 15u);
}
