#include "sched/scheduler.h"

#include <sched.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sched/task_group.h"

using namespace ocifs;
using namespace std::chrono_literals;

namespace {

// A latch a test opens once; tasks block on it.
class Gate {
 public:
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Pass() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

template <typename Pred>
void WaitFor(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!pred()) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(1ms);
  }
}

// Posts a task that holds a thread of `group`'s scheduler until `gate` opens, and waits until it runs.
void Occupy(TaskGroup& group, Gate& gate) {
  std::atomic<bool> running{false};
  REQUIRE(group.Post(TaskClass::kHousekeeping, [&] {
    running = true;
    gate.Pass();
  }));
  WaitFor([&] { return running.load(); });
}

struct Concurrency {
  int peak = 0;  // tasks running at once at most
  int done = 0;
};

// Runs `n` short kReadahead tasks in `group` and measures how many ran at once.
Concurrency RunCounted(TaskGroup& group, int n) {
  std::atomic<int> running{0}, peak{0}, done{0};
  for (int i = 0; i < n; ++i) {
    REQUIRE(group.Post(TaskClass::kReadahead, [&] {
      const int now = ++running;
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {
      }
      std::this_thread::sleep_for(1ms);
      --running;
      ++done;
    }));
  }
  group.Wait();
  return {peak.load(), done.load()};
}

SchedulerOptions OneThread() {
  SchedulerOptions o;
  o.max_threads = 1;
  return o;
}

}  // namespace

TEST_CASE("scheduler runs every posted task and a group waits for its tasks") {
  auto s = std::make_shared<Scheduler>();
  TaskGroup group(s, "test");
  std::atomic<int> done{0};
  for (int i = 0; i < 100; ++i) REQUIRE(group.Post(TaskClass::kReadahead, [&] { ++done; }) != 0);
  group.Wait();
  CHECK(done == 100);
  CHECK(s->stats().ran[static_cast<size_t>(TaskClass::kReadahead)] == 100);
}

TEST_CASE("scheduler starts queued tasks in priority order: profile, read-ahead, first pass, prefetch-all, writes") {
  auto s = std::make_shared<Scheduler>(OneThread());
  TaskGroup group(s, "test");
  Gate gate;
  Occupy(group, gate);
  std::mutex mu;
  std::vector<std::string> order;
  auto record = [&](std::string name) {
    return [&, name] {
      std::lock_guard lock(mu);
      order.push_back(name);
    };
  };
  // Posted lowest first: the one thread must still take them highest first.
  REQUIRE(group.Post(TaskClass::kDerivedWrites, record("writes")));
  REQUIRE(group.Post(TaskClass::kPrefetchAll, record("prefetch-all")));
  REQUIRE(group.Post(TaskClass::kFirstPass, record("first-pass")));
  REQUIRE(group.Post(TaskClass::kReadahead, record("readahead")));
  REQUIRE(group.Post(TaskClass::kProfilePrefetch, record("profile")));
  gate.Open();
  group.Wait();
  CHECK(order == std::vector<std::string>{"profile", "readahead", "first-pass", "prefetch-all", "writes"});
}

TEST_CASE("scheduler keeps each class under its cap and the threads under max_threads") {
  SchedulerOptions o;
  o.max_threads = 6;
  o.max_running[static_cast<size_t>(TaskClass::kReadahead)] = 2;
  auto s = std::make_shared<Scheduler>(o);
  TaskGroup group(s, "test");
  const Concurrency c = RunCounted(group, 40);
  CHECK(c.done == 40);
  CHECK(c.peak <= 2);
  CHECK(s->stats().threads <= 6);
}

TEST_CASE("a group keeps its own tasks under its max_running") {
  auto s = std::make_shared<Scheduler>();
  TaskGroup group(s, "test", {.max_running = 1});
  const Concurrency c = RunCounted(group, 20);
  CHECK(c.done == 20);
  CHECK(c.peak == 1);
}

TEST_CASE("prefetch-all waits while a foreground read is in progress") {
  auto s = std::make_shared<Scheduler>();
  TaskGroup group(s, "test");
  std::atomic<bool> in_foreground{true}, ran_during_foreground{false}, ran{false};
  std::atomic<bool> other_ran{false};
  {
    Scheduler::Foreground fg(*s);
    REQUIRE(group.Post(TaskClass::kPrefetchAll, [&] {
      if (in_foreground) ran_during_foreground = true;
      ran = true;
    }));
    // Other classes still run during the read.
    REQUIRE(group.Post(TaskClass::kReadahead, [&] { other_ran = true; }));
    WaitFor([&] { return other_ran.load(); });
    CHECK_FALSE(ran);
    in_foreground = false;
  }
  group.Wait();
  CHECK(ran);
  CHECK_FALSE(ran_during_foreground);
}

TEST_CASE("a task posted with not_before starts no earlier") {
  auto s = std::make_shared<Scheduler>();
  TaskGroup group(s, "test");
  const auto posted = Scheduler::Clock::now();
  std::atomic<int64_t> started_after_ms{-1};
  REQUIRE(group.Post(TaskClass::kPrefetchAll, [&] {
    started_after_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Scheduler::Clock::now() - posted).count();
  }, posted + 50ms));
  group.Wait();
  CHECK(started_after_ms >= 50);
}

TEST_CASE("writes of derived data run under SCHED_IDLE, and the thread leaves it afterwards") {
  auto s = std::make_shared<Scheduler>(OneThread());
  TaskGroup group(s, "test");
  std::atomic<int> during{-1}, after{-1};
  REQUIRE(group.Post(TaskClass::kDerivedWrites, [&] { during = sched_getscheduler(0); }));
  group.Wait();
  REQUIRE(group.Post(TaskClass::kReadahead, [&] { after = sched_getscheduler(0); }));
  group.Wait();
  CHECK(during == SCHED_IDLE);
  CHECK(after == SCHED_OTHER);
}

TEST_CASE("a group refuses tasks beyond max_queued") {
  auto s = std::make_shared<Scheduler>(OneThread());
  TaskGroup group(s, "test", {.max_queued = 2});
  Gate gate;
  std::atomic<bool> running{false};
  REQUIRE(group.Post(TaskClass::kReadahead, [&] {
    running = true;
    gate.Pass();
  }));
  WaitFor([&] { return running.load(); });
  CHECK(group.Post(TaskClass::kReadahead, [] {}) != 0);
  CHECK(group.Post(TaskClass::kReadahead, [] {}) != 0);
  CHECK(group.Post(TaskClass::kReadahead, [] {}) == 0);
  gate.Open();
  group.Wait();
}

TEST_CASE("RunIfQueued runs a task no thread can take on the calling thread, once") {
  auto s = std::make_shared<Scheduler>(OneThread());
  TaskGroup group(s, "test");
  Gate gate;
  Occupy(group, gate);
  std::atomic<int> runs{0};
  std::thread::id ran_on;
  const auto id = group.Post(TaskClass::kFirstPass, [&] {
    ++runs;
    ran_on = std::this_thread::get_id();
  });
  REQUIRE(id != 0);
  CHECK(group.RunIfQueued(id));
  CHECK(ran_on == std::this_thread::get_id());
  CHECK_FALSE(group.RunIfQueued(id));
  gate.Open();
  group.Wait();
  CHECK(runs == 1);
}

TEST_CASE("RunIfQueued leaves a task that a thread can take to the scheduler") {
  auto s = std::make_shared<Scheduler>();
  TaskGroup group(s, "test");
  std::atomic<bool> on_caller{false};
  const auto caller = std::this_thread::get_id();
  const auto id = group.Post(TaskClass::kFirstPass, [&] { on_caller = std::this_thread::get_id() == caller; });
  REQUIRE(id != 0);
  CHECK_FALSE(group.RunIfQueued(id));
  group.Wait();
  CHECK_FALSE(on_caller);
}

TEST_CASE("cancelling a group drops its queued tasks, runs its hooks once and refuses new ones") {
  auto s = std::make_shared<Scheduler>(OneThread());
  TaskGroup blocker(s, "blocker");
  Gate gate;
  Occupy(blocker, gate);
  TaskGroup group(s, "test");
  std::atomic<int> ran{0}, hooks{0};
  group.OnCancel([&] { ++hooks; });
  for (int i = 0; i < 5; ++i) REQUIRE(group.Post(TaskClass::kReadahead, [&] { ++ran; }));
  group.Cancel();
  group.Cancel();
  CHECK(group.cancelled());
  CHECK(hooks == 1);
  CHECK(group.Post(TaskClass::kReadahead, [&] { ++ran; }) == 0);
  group.OnCancel([&] { ++hooks; });  // late: runs at once
  CHECK(hooks == 2);
  gate.Open();
  blocker.Wait();
  group.Wait();
  CHECK(ran == 0);
}

TEST_CASE("a group's destructor waits for its running task") {
  auto s = std::make_shared<Scheduler>();
  std::atomic<bool> started{false}, finished{false};
  {
    TaskGroup group(s, "test");
    REQUIRE(group.Post(TaskClass::kFirstPass, [&] {
      started = true;
      std::this_thread::sleep_for(20ms);
      finished = true;
    }));
    WaitFor([&] { return started.load(); });
  }
  CHECK(finished);
}

TEST_CASE("Stop cancels every group, wakes a task blocked on its owner through the hook, and joins") {
  auto s = std::make_shared<Scheduler>();
  TaskGroup group(s, "test");
  Gate owner_gate;  // what the long task waits on; the owner's cancel hook opens it
  group.OnCancel([&] { owner_gate.Open(); });
  std::atomic<bool> started{false}, ended{false}, queued_ran{false};
  REQUIRE(group.Post(TaskClass::kFirstPass, [&] {
    started = true;
    owner_gate.Pass();
    ended = true;
  }));
  WaitFor([&] { return started.load(); });
  REQUIRE(group.Post(TaskClass::kPrefetchAll, [&] { queued_ran = true; }, Scheduler::Clock::now() + 1h));
  s->Stop();
  CHECK(ended);
  CHECK_FALSE(queued_ran);
  CHECK(s->stopped());
  CHECK(s->stats().threads == 0);
  CHECK(group.Post(TaskClass::kReadahead, [] {}) == 0);
  group.Wait();  // nothing queued or running
}

TEST_CASE("a group made after Stop is cancelled from the start") {
  auto s = std::make_shared<Scheduler>();
  s->Stop();
  TaskGroup group(s, "late");
  CHECK(group.cancelled());
  CHECK(group.Post(TaskClass::kReadahead, [] {}) == 0);
}

TEST_CASE("the decode pool has the configured number of threads") {
  SchedulerOptions o;
  o.decode_threads = 3;
  Scheduler s(o);
  CHECK(s.decode_pool().threads() == 3);
  o.decode_threads = 0;
  Scheduler none(o);
  CHECK(none.decode_pool().threads() == 0);
}
