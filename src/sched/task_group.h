// TaskGroup: the background tasks of one owner (a cache stage, a decoder,
// the image stack, the FUSE server) on the mount's Scheduler.
//
// The owner posts tasks that may use its members; the group's destructor
// cancels what is queued and waits for what runs, so no task outlives its
// owner: declare the group last among the members its tasks use.
//
// Cancellation: Cancel (or the scheduler's Stop) drops the queued tasks, sets
// cancelled(), and runs the cancel hooks once, which is how a long task (a
// first pass) or a thread blocked on it (a read waiting for the pass) learns
// to stop. Tasks should check cancelled() (or their owner's flag set by a
// hook) between steps.
//
// Thread safety: every member is safe for concurrent use, also from inside
// the group's own tasks (a step may post its successor); Wait must not be
// called from one of the group's tasks.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "sched/scheduler.h"

namespace ocifs {

struct TaskGroupLimits {
  // Post refuses a task while this many of the group's wait (hints such as
  // read-ahead are dropped rather than piled up).
  size_t max_queued = SIZE_MAX;
  // The group's tasks running at once at most (besides its class's cap).
  size_t max_running = SIZE_MAX;
};

class TaskGroup {
 public:
  using TaskId = uint64_t;  // 0: not posted
  using Limits = TaskGroupLimits;

  // scheduler: null means Scheduler::Shared().
  TaskGroup(std::shared_ptr<Scheduler> scheduler, std::string name, Limits limits = {});
  ~TaskGroup();
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  // Queues `task` in class `cls`, to start no earlier than `not_before`.
  // Returns its id, or 0 if refused: the group is cancelled, the scheduler
  // stopped, or max_queued of the group's tasks wait.
  TaskId Post(TaskClass cls, std::function<void()> task, Scheduler::Clock::time_point not_before = {});
  // If task `id` is still queued and no thread will take it soon (its class
  // or group is at its cap, or every thread is busy and no more may start),
  // takes it out and runs it on the calling thread (returns true); false
  // otherwise (it will start soon, started, ended or was dropped).
  bool RunIfQueued(TaskId id);

  // Drops the queued tasks, marks the group cancelled and runs the cancel
  // hooks (once). Does not wait: see Wait.
  void Cancel();
  bool cancelled() const;
  // Runs `hook` at cancellation (at once if already cancelled). Hooks must
  // not block; they run on the cancelling thread.
  void OnCancel(std::function<void()> hook);
  // Blocks until none of the group's tasks is queued or running.
  void Wait();

  Scheduler& scheduler() const { return *scheduler_; }

 private:
  const std::shared_ptr<Scheduler> scheduler_;
  const std::shared_ptr<Scheduler::Group> group_;
};

}  // namespace ocifs
