// PrefetchQueue: background fetch work for one source, on a few threads of
// its own (policy decides what to fetch; this only runs it).
//
// Two priorities:
//   jobs       read-ahead and Prefetch hints; FIFO; at most max_pending wait
//              (Post drops further ones: they are hints)
//   idle work  one step at a time on one thread, only while no job waits and
//              no foreground read is in progress (a Foreground guard is
//              alive), so it yields to reads within one step; for the
//              low-priority fetch of a whole layer.
// Threads start with the first Post or SetIdleWork.
//
// Thread safety: safe for concurrent use. The destructor drops waiting jobs,
// stops the idle work, lets running ones finish and joins the threads; jobs
// may therefore use whatever outlives the queue (declare it last).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ocifs {

class PrefetchQueue {
 public:
  PrefetchQueue(unsigned threads, size_t max_pending);
  ~PrefetchQueue();
  PrefetchQueue(const PrefetchQueue&) = delete;
  PrefetchQueue& operator=(const PrefetchQueue&) = delete;

  // Queues a job; false (dropped) if max_pending jobs already wait or threads == 0.
  bool Post(std::function<void()> job);
  // Runs step() repeatedly in idle time until it returns false (nothing left).
  // Replaces any earlier idle work.
  void SetIdleWork(std::function<bool()> step);

  // Holds the next idle step back until `pause` from now has passed (jobs
  // still run meanwhile): how a step paces the idle work, e.g. to a bandwidth cap.
  void DeferIdle(std::chrono::steady_clock::duration pause);
  // Marks a foreground read in progress for its lifetime.
  class Foreground {
   public:
    explicit Foreground(PrefetchQueue& q) : q_(&q) { q_->foreground_.fetch_add(1, std::memory_order_relaxed); }
    ~Foreground();
    Foreground(const Foreground&) = delete;
    Foreground& operator=(const Foreground&) = delete;

   private:
    PrefetchQueue* q_;
  };

  size_t pending() const;
  // Blocks until no job waits or runs and the idle work is done (tests).
  void Drain();

 private:
  void StartLocked();
  void Worker();
  bool IdleRunnable() const;  // needs mu_
  bool IdleDeferred() const;  // needs mu_: idle work would run but for idle_not_before_

  const unsigned threads_;
  const size_t max_pending_;
  std::atomic<int> foreground_{0};
  std::atomic<bool> has_idle_{false};  // mirrors bool(idle_) for the Foreground fast path

  mutable std::mutex mu_;               // guards everything below
  std::condition_variable cv_;          // work arrived, foreground ended, stopping
  std::condition_variable drained_cv_;  // a job or an idle step ended
  std::deque<std::function<void()>> jobs_;
  std::function<bool()> idle_;
  bool idle_running_ = false;
  std::chrono::steady_clock::time_point idle_not_before_{};
  size_t running_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace ocifs
