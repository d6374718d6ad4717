// Scheduler: the one owner of a mount's background work.
//
// Every thread a mount runs besides libfuse's request threads belongs to one
// Scheduler: a bounded set of task threads and the decompression helpers
// (decode_pool()). Work is posted as tasks through a TaskGroup (task_group.h)
// that its owner (a cache stage, a decoder, the image stack) holds; a task is
// one step or one loop of a background activity, in one of these classes,
// highest priority first:
//
//   (foreground reads: libfuse's threads; never queued here)
//   kProfilePrefetch  a profile's prefetch: what the workload will read next
//   kReadahead        read-ahead of a sequential stream, a small miss's chunk group
//   kFirstPass        a layer's first pass (and the check of the complete index)
//   kPrefetchAll      the rest of the layer, in idle time
//   kDerivedWrites    writes of derived data (kept clusters, indexes)
//   kHousekeeping     the mount's timers (stats file, kernel readahead knob)
//
// A free thread takes the highest-priority queued task whose class is under
// its cap (SchedulerOptions::max_running) and whose not_before has passed;
// kPrefetchAll waits while a foreground read is in progress (a Foreground
// guard is alive) and while a task of a higher class waits to run, so it
// yields to reads within one step. kDerivedWrites runs under the OS's
// SCHED_IDLE: only on CPU time nothing else wants. Threads start on demand,
// up to max_threads, and stay until Stop.
//
// Stop (the destructor calls it): no task starts any more, queued tasks are
// dropped, every group is cancelled (its cancel hooks run, so a task blocked
// on something its owner controls wakes up), running tasks are waited for and
// the threads joined. The process then ends through its destructors.
//
// Thread safety: every member is safe for concurrent use. The scheduler must
// outlive its TaskGroups' use of it (groups hold it by shared_ptr). It must
// not be destroyed by one of its own tasks.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "base/worker_pool.h"

namespace ocifs {

enum class TaskClass : uint8_t {
  kProfilePrefetch = 0,
  kReadahead,
  kFirstPass,
  kPrefetchAll,
  kDerivedWrites,
  kHousekeeping,
};
inline constexpr size_t kTaskClassCount = 6;
const char* TaskClassName(TaskClass c);

struct SchedulerOptions {
  // Task threads at most (the decode pool's threads are apart).
  unsigned max_threads = 48;
  // Tasks of each class running at once at most, in TaskClass order. A first
  // pass is one long task per stream layer; a reader waiting for a pass that
  // is still queued runs it itself (TaskGroup::RunIfQueued), so the cap never
  // stalls a read.
  std::array<unsigned, kTaskClassCount> max_running = {32, 8, 8, 1, 1, 1};
  // Threads that help one foreground read decompress its pieces side by side
  // (WorkerPool); SIZE_MAX: one per core; 0: the reading thread alone.
  size_t decode_threads = SIZE_MAX;
};

class TaskGroup;

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Scheduler(SchedulerOptions options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The scheduler of code that was given none (unit tests, one-shot
  // commands' stages built outside an ImageStack): one per process, stopped
  // at exit. A mount always makes its own.
  static std::shared_ptr<Scheduler> Shared();

  // Stops every task (see above) and joins the threads; idempotent. Later
  // posts are refused.
  void Stop();
  bool stopped() const;

  // Marks a foreground read in progress for its lifetime (kPrefetchAll waits).
  class Foreground {
   public:
    explicit Foreground(Scheduler& s);
    ~Foreground();
    Foreground(const Foreground&) = delete;
    Foreground& operator=(const Foreground&) = delete;

   private:
    Scheduler* s_;
  };

  // The decompression helpers of foreground reads; created on first use.
  WorkerPool& decode_pool();
  // The helpers that fetch the extra runs of missing chunks of one foreground
  // read (ChunkCache::ReadChunks): they wait on the network, not the CPU, so
  // they are apart from decode_pool(), whose threads may be the readers
  // waiting for them (a zstd frame or gzip span decoded in parallel reads its
  // compressed bytes). kFetchHelpers threads; created on first use.
  WorkerPool& fetch_pool();
  static constexpr size_t kFetchHelpers = 8;

  struct Stats {
    size_t threads = 0;                                 // task threads started
    std::array<uint64_t, kTaskClassCount> ran{};        // tasks run to completion, per class
    std::array<size_t, kTaskClassCount> queued{};       // waiting now
    std::array<size_t, kTaskClassCount> running{};      // running now
  };
  Stats stats() const;

 private:
  friend class TaskGroup;
  // A TaskGroup's state, shared with its queued tasks.
  struct Group {
    std::string name;
    std::atomic<bool> cancelled{false};
    size_t max_queued = SIZE_MAX;   // Post refuses beyond this many queued
    size_t max_running = SIZE_MAX;  // tasks of the group running at once at most
    size_t queued = 0;   // guarded by Scheduler::mu_
    size_t running = 0;  // guarded by Scheduler::mu_
    std::vector<std::function<void()>> cancel_hooks;  // guarded by Scheduler::mu_; run once
  };
  struct Task {
    uint64_t id = 0;
    std::shared_ptr<Group> group;
    TaskClass cls = TaskClass::kHousekeeping;
    Clock::time_point not_before{};
    std::function<void()> fn;
  };

  // TaskGroup's entry points (all take mu_).
  uint64_t Enqueue(const std::shared_ptr<Group>& group, TaskClass cls, Clock::time_point not_before,
                   std::function<void()> fn);
  // Removes the group's queued tasks (returned, to be destroyed outside the lock).
  std::vector<std::function<void()>> DropQueuedLocked(const Group& group);
  bool RunIfQueued(const std::shared_ptr<Group>& group, uint64_t id);
  void Register(const std::shared_ptr<Group>& group);
  void Unregister(const Group& group);
  void CancelGroup(const std::shared_ptr<Group>& group);
  void WaitGroup(const Group& group);

  void WorkerLoop();
  // The queue and position of the task a free thread should run now, if any. Needs mu_.
  bool PickLocked(Clock::time_point now, size_t* cls, size_t* pos, Clock::time_point* wake) const;
  void RunTask(Task task, bool idle_policy);
  void TaskEndedLocked(Task& task);

  const SchedulerOptions options_;
  std::atomic<int> foreground_{0};
  std::atomic<bool> prefetch_all_waiting_{false};  // a kPrefetchAll task is queued (Foreground's fast path)

  mutable std::mutex mu_;  // guards everything below; never held while a task runs
  std::condition_variable work_cv_;   // a task was queued, a cap freed, a foreground read ended, stop
  std::condition_variable group_cv_;  // a group's task ended or was dropped (WaitGroup)
  std::array<std::deque<Task>, kTaskClassCount> queues_;
  std::array<size_t, kTaskClassCount> running_{};
  std::array<uint64_t, kTaskClassCount> ran_{};
  std::unordered_set<Group*> groups_;  // live groups, cancelled by Stop
  uint64_t next_id_ = 1;
  size_t idle_threads_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;

  std::once_flag decode_once_;
  std::unique_ptr<WorkerPool> decode_pool_;
  std::once_flag fetch_once_;
  std::unique_ptr<WorkerPool> fetch_pool_;
};

}  // namespace ocifs
