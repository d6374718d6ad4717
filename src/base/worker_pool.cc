#include "base/worker_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

namespace ocifs {
namespace {

// One ParallelFor call. Helpers hold it by shared_ptr and may start after the
// batch is over; they touch `fn` only after claiming an index below `n`,
// which the caller is still waiting for.
struct Batch {
  Batch(size_t count, const std::function<Status(size_t)>* f) : n(count), fn(f) {}
  const size_t n;
  const std::function<Status(size_t)>* const fn;
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::condition_variable finished;
  size_t done = 0;                     // guarded by mu
  size_t first_error_index = SIZE_MAX;  // guarded by mu
  Status first_error;                  // guarded by mu

  void Work() {
    for (;;) {
      const size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      Status s = (*fn)(i);
      std::lock_guard lock(mu);
      if (!s.ok() && i < first_error_index) {
        first_error_index = i;
        first_error = std::move(s);
      }
      if (++done == n) finished.notify_all();
    }
  }
};

}  // namespace

WorkerPool::WorkerPool(size_t threads) {
  workers_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void WorkerPool::Post(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void WorkerPool::WorkerLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    std::function<void()> job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

Status WorkerPool::ParallelFor(size_t n, const std::function<Status(size_t)>& fn) {
  if (n == 0) return Status::Ok();
  auto batch = std::make_shared<Batch>(n, &fn);
  const size_t helpers = std::min(n - 1, workers_.size());
  for (size_t i = 0; i < helpers; ++i) Post([batch] { batch->Work(); });
  batch->Work();
  std::unique_lock lock(batch->mu);
  batch->finished.wait(lock, [&] { return batch->done == n; });
  return batch->first_error;
}

}  // namespace ocifs
