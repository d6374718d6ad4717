// WorkerPool: a fixed set of threads that help callers run CPU-bound pieces of
// one request (a mount's is its Scheduler's decode_pool()) (decompressing several gzip spans, zstd frames or qcow2 clusters
// of one large read) side by side, instead of one after another on the thread
// that asked.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

// Thread safety: every member may be called from any thread, including from
// inside a job the pool is running (nested ParallelFor).
// Progress: the calling thread works on its own batch too and waits only for
// pieces other threads have already started, so a ParallelFor never waits for
// a free worker and nested calls cannot deadlock, whatever the pool size.
// Workers only help: jobs left queued when the pool is destroyed are dropped.
class WorkerPool {
 public:
  // `threads` == 0 makes every ParallelFor run on the caller alone.
  explicit WorkerPool(size_t threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs fn(0) .. fn(n - 1), each exactly once, spread over the caller and idle
  // workers; returns when all have returned. The result is the error of the
  // lowest index that failed, or Ok. `fn` must be safe to call concurrently.
  Status ParallelFor(size_t n, const std::function<Status(size_t)>& fn);

  size_t threads() const { return workers_.size(); }

 private:
  void Post(std::function<void()> job);
  void WorkerLoop();

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace ocifs
