// BackgroundPass: the first sequential pass of a stream decoder (a gzip
// layer's indexing pass, a single-frame zstd layer's decompression), run as
// one kFirstPass task of the mount's Scheduler. GzipSource and
// ZstdStreamSource share it; each keeps its own progress (frontier) state.
//
// Lifecycle: constructed idle; Start posts the body once. A reader about to
// wait for the pass calls Need: it starts the pass and, if the task still
// waits for a thread (the class's cap is reached), runs it on the reader's
// thread, so a read never waits for a pass nobody runs. Cancellation (the
// owner's destruction or the scheduler's Stop) sets cancelled(), which the
// body polls, and runs the owner's hook (OnCancel) once, which wakes the
// owner's waiters.
//
// Thread safety: safe for concurrent use. Ownership: the body may use its
// owner's members: declare the pass last, so it is destroyed (cancelled and
// waited for) first.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "sched/task_group.h"

namespace ocifs {

class BackgroundPass {
 public:
  // scheduler: null means Scheduler::Shared().
  BackgroundPass(std::shared_ptr<Scheduler> scheduler, std::string name, std::function<void()> body);
  ~BackgroundPass();
  BackgroundPass(const BackgroundPass&) = delete;
  BackgroundPass& operator=(const BackgroundPass&) = delete;

  // Posts the body once; later calls do nothing.
  void Start();
  // Start, then run the body here if its task has not started yet.
  void Need();
  bool started() const;
  // True once the pass is cancelled; the body stops soon after.
  const std::atomic<bool>& cancelled() const { return cancelled_; }
  // Runs `hook` at cancellation (at once if already cancelled).
  void OnCancel(std::function<void()> hook) { group_.OnCancel(std::move(hook)); }
  Scheduler& scheduler() const { return group_.scheduler(); }

 private:
  const std::function<void()> body_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  bool started_ = false;      // guarded by mu_
  TaskGroup::TaskId id_ = 0;  // guarded by mu_
  TaskGroup group_;           // last: cancelled and waited for first
};

}  // namespace ocifs
