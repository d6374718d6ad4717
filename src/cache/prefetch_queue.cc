#include "cache/prefetch_queue.h"

namespace ocifs {

PrefetchQueue::PrefetchQueue(unsigned threads, size_t max_pending) : threads_(threads), max_pending_(max_pending) {}

PrefetchQueue::~PrefetchQueue() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    jobs_.clear();
    idle_ = nullptr;
    has_idle_ = false;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

PrefetchQueue::Foreground::~Foreground() {
  if (q_->foreground_.fetch_sub(1, std::memory_order_acq_rel) == 1 && q_->has_idle_.load(std::memory_order_relaxed)) {
    std::lock_guard lock(q_->mu_);  // pairs with the worker's check under mu_
    q_->cv_.notify_all();
  }
}

void PrefetchQueue::StartLocked() {
  while (workers_.size() < threads_) workers_.emplace_back([this] { Worker(); });
}

bool PrefetchQueue::Post(std::function<void()> job) {
  if (threads_ == 0) return false;
  {
    std::lock_guard lock(mu_);
    if (stop_ || jobs_.size() >= max_pending_) return false;
    jobs_.push_back(std::move(job));
    StartLocked();
  }
  cv_.notify_one();
  return true;
}

void PrefetchQueue::SetIdleWork(std::function<bool()> step) {
  if (threads_ == 0) return;
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    idle_ = std::move(step);
    has_idle_ = static_cast<bool>(idle_);
    StartLocked();
  }
  cv_.notify_all();
}

size_t PrefetchQueue::pending() const {
  std::lock_guard lock(mu_);
  return jobs_.size();
}

void PrefetchQueue::DeferIdle(std::chrono::steady_clock::duration pause) {
  std::lock_guard lock(mu_);
  idle_not_before_ = std::chrono::steady_clock::now() + pause;
}

bool PrefetchQueue::IdleDeferred() const {
  return idle_ && !idle_running_ && jobs_.empty() && foreground_.load(std::memory_order_acquire) == 0 &&
         std::chrono::steady_clock::now() < idle_not_before_;
}

bool PrefetchQueue::IdleRunnable() const {
  return idle_ && !idle_running_ && jobs_.empty() && foreground_.load(std::memory_order_acquire) == 0 &&
         std::chrono::steady_clock::now() >= idle_not_before_;
}

void PrefetchQueue::Worker() {
  std::unique_lock lock(mu_);
  while (true) {
    while (!stop_ && jobs_.empty() && !IdleRunnable()) {
      if (IdleDeferred()) {
        cv_.wait_until(lock, idle_not_before_);
      } else {
        cv_.wait(lock);
      }
    }
    if (stop_) return;
    if (!jobs_.empty()) {
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
      lock.unlock();
      job();
      lock.lock();
      --running_;
    } else {
      auto step = idle_;
      idle_running_ = true;
      lock.unlock();
      const bool more = step();
      lock.lock();
      idle_running_ = false;
      if (!more && !stop_) {
        idle_ = nullptr;
        has_idle_ = false;
      }
      cv_.notify_all();  // another worker may take the next step
    }
    drained_cv_.notify_all();
  }
}

void PrefetchQueue::Drain() {
  std::unique_lock lock(mu_);
  drained_cv_.wait(lock, [&] { return stop_ || (jobs_.empty() && running_ == 0 && !idle_ && !idle_running_); });
}

}  // namespace ocifs
