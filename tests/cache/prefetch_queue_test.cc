#include "cache/prefetch_queue.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <vector>
#include <thread>

using namespace ocifs;

TEST_CASE("prefetch queue runs every posted job on its threads") {
  std::atomic<int> done{0};
  PrefetchQueue queue(2, 100);
  for (int i = 0; i < 50; ++i) REQUIRE(queue.Post([&] { ++done; }));
  queue.Drain();
  CHECK(done == 50);
}

TEST_CASE("prefetch queue drops jobs beyond max_pending, and all jobs without threads") {
  PrefetchQueue none(0, 10);
  CHECK_FALSE(none.Post([] {}));
  std::atomic<bool> release{false};
  PrefetchQueue queue(1, 2);
  REQUIRE(queue.Post([&] { while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1)); }));
  while (queue.pending() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // running
  CHECK(queue.Post([] {}));
  CHECK(queue.Post([] {}));
  CHECK_FALSE(queue.Post([] {}));
  release = true;
  queue.Drain();
}

TEST_CASE("prefetch queue runs idle work only while no foreground read is in progress") {
  PrefetchQueue queue(2, 10);
  std::atomic<int> steps{0};
  std::atomic<bool> during_foreground{false};
  std::atomic<bool> in_foreground{false};
  {
    PrefetchQueue::Foreground fg(queue);
    in_foreground = true;
    queue.SetIdleWork([&] {
      if (in_foreground) during_foreground = true;
      return ++steps < 20;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    CHECK(steps == 0);
    in_foreground = false;
  }
  queue.Drain();
  CHECK(steps == 20);
  CHECK_FALSE(during_foreground);
}

TEST_CASE("prefetch queue holds idle steps back by DeferIdle while jobs still run") {
  using Clock = std::chrono::steady_clock;
  PrefetchQueue queue(2, 10);
  std::mutex mu;
  std::vector<Clock::time_point> at;
  queue.SetIdleWork([&] {
    std::lock_guard lock(mu);
    at.push_back(Clock::now());
    queue.DeferIdle(std::chrono::milliseconds(40));
    return at.size() < 4;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto posted = Clock::now();
  std::atomic<bool> job_ran{false};
  REQUIRE(queue.Post([&] { job_ran = true; }));
  while (!job_ran) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(Clock::now() - posted < std::chrono::milliseconds(30));  // not held back by the pause
  queue.Drain();
  REQUIRE(at.size() == 4);
  for (size_t i = 1; i < at.size(); ++i) CHECK(at[i] - at[i - 1] >= std::chrono::milliseconds(40));
}

TEST_CASE("prefetch queue destructor drops waiting jobs and joins") {
  std::atomic<int> done{0};
  {
    PrefetchQueue queue(1, 100);
    for (int i = 0; i < 100; ++i) {
      (void)queue.Post([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        ++done;
      });
    }
  }
  const int at_exit = done;
  CHECK(at_exit < 100);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(done == at_exit);
}
