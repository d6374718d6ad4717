#include "sched/scheduler.h"

#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace ocifs {

const char* TaskClassName(TaskClass c) {
  switch (c) {
    case TaskClass::kProfilePrefetch: return "profile-prefetch";
    case TaskClass::kReadahead: return "readahead";
    case TaskClass::kFirstPass: return "first-pass";
    case TaskClass::kPrefetchAll: return "prefetch-all";
    case TaskClass::kDerivedWrites: return "derived-writes";
    case TaskClass::kHousekeeping: return "housekeeping";
  }
  return "?";
}

Scheduler::Scheduler(SchedulerOptions options) : options_(options) {}

Scheduler::~Scheduler() { Stop(); }

std::shared_ptr<Scheduler> Scheduler::Shared() {
  static const std::shared_ptr<Scheduler> shared = std::make_shared<Scheduler>();
  return shared;
}

WorkerPool& Scheduler::decode_pool() {
  std::call_once(decode_once_, [this] {
    const size_t n = options_.decode_threads != SIZE_MAX ? options_.decode_threads
                                                         : std::max(1u, std::thread::hardware_concurrency());
    decode_pool_ = std::make_unique<WorkerPool>(n);
  });
  return *decode_pool_;
}

WorkerPool& Scheduler::fetch_pool() {
  std::call_once(fetch_once_, [this] { fetch_pool_ = std::make_unique<WorkerPool>(kFetchHelpers); });
  return *fetch_pool_;
}

Scheduler::Foreground::Foreground(Scheduler& s) : s_(&s) { s_->foreground_.fetch_add(1, std::memory_order_relaxed); }

Scheduler::Foreground::~Foreground() {
  if (s_->foreground_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
      s_->prefetch_all_waiting_.load(std::memory_order_relaxed)) {
    std::lock_guard lock(s_->mu_);  // pairs with the worker's check under mu_
    s_->work_cv_.notify_all();
  }
}

bool Scheduler::stopped() const {
  std::lock_guard lock(mu_);
  return stop_;
}

void Scheduler::Stop() {
  std::vector<std::function<void()>> dropped, hooks;
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    if (!stop_) {
      stop_ = true;
      for (Group* g : groups_) {
        g->cancelled.store(true);
        for (auto& h : g->cancel_hooks) hooks.push_back(std::move(h));
        g->cancel_hooks.clear();
      }
      for (auto& q : queues_) {
        for (Task& t : q) {
          --t.group->queued;
          dropped.push_back(std::move(t.fn));
        }
        q.clear();
      }
      prefetch_all_waiting_ = false;
    }
    threads.swap(threads_);
  }
  work_cv_.notify_all();
  group_cv_.notify_all();
  for (auto& h : hooks) h();
  dropped.clear();
  for (std::thread& t : threads) {
    if (t.get_id() == std::this_thread::get_id()) {
      // Destroyed by one of its own tasks (a contract violation): that
      // thread cannot join itself; it ends when the task returns.
      spdlog::error("scheduler stopped from its own task; one thread is left to end by itself");
      t.detach();
    } else {
      t.join();
    }
  }
  std::lock_guard lock(mu_);
  group_cv_.notify_all();
}

Scheduler::Stats Scheduler::stats() const {
  std::lock_guard lock(mu_);
  Stats s;
  s.threads = threads_.size();
  s.ran = ran_;
  s.running = running_;
  for (size_t c = 0; c < kTaskClassCount; ++c) s.queued[c] = queues_[c].size();
  return s;
}

void Scheduler::Register(const std::shared_ptr<Group>& group) {
  std::lock_guard lock(mu_);
  if (stop_) group->cancelled.store(true);
  groups_.insert(group.get());
}

void Scheduler::Unregister(const Group& group) {
  std::lock_guard lock(mu_);
  groups_.erase(const_cast<Group*>(&group));
}

uint64_t Scheduler::Enqueue(const std::shared_ptr<Group>& group, TaskClass cls, Clock::time_point not_before,
                            std::function<void()> fn) {
  std::unique_lock lock(mu_);
  if (stop_ || group->cancelled.load() || group->queued >= group->max_queued) return 0;
  Task task;
  task.id = next_id_++;
  task.group = group;
  task.cls = cls;
  task.not_before = not_before;
  task.fn = std::move(fn);
  const uint64_t id = task.id;
  ++group->queued;
  queues_[static_cast<size_t>(cls)].push_back(std::move(task));
  if (cls == TaskClass::kPrefetchAll) prefetch_all_waiting_ = true;
  // Tasks that could start now (each class up to its cap) beyond the idle threads: one more thread.
  size_t wanted = 0;
  for (size_t c = 0; c < kTaskClassCount; ++c) {
    const size_t room = options_.max_running[c] > running_[c] ? options_.max_running[c] - running_[c] : 0;
    wanted += std::min(queues_[c].size(), room);
  }
  if (wanted > idle_threads_ && threads_.size() < options_.max_threads) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
  lock.unlock();
  work_cv_.notify_one();
  return id;
}

std::vector<std::function<void()>> Scheduler::DropQueuedLocked(const Group& group) {
  std::vector<std::function<void()>> dropped;
  for (auto& q : queues_) {
    for (auto it = q.begin(); it != q.end();) {
      if (it->group.get() == &group) {
        dropped.push_back(std::move(it->fn));
        --it->group->queued;
        it = q.erase(it);
      } else {
        ++it;
      }
    }
  }
  prefetch_all_waiting_ = !queues_[static_cast<size_t>(TaskClass::kPrefetchAll)].empty();
  return dropped;
}

void Scheduler::CancelGroup(const std::shared_ptr<Group>& group) {
  std::vector<std::function<void()>> dropped, hooks;
  {
    std::lock_guard lock(mu_);
    group->cancelled.store(true);
    dropped = DropQueuedLocked(*group);
    hooks.swap(group->cancel_hooks);
  }
  group_cv_.notify_all();
  for (auto& h : hooks) h();
  // `dropped` (closures that may hold the owner's resources) is destroyed here, outside mu_.
}

void Scheduler::WaitGroup(const Group& group) {
  std::unique_lock lock(mu_);
  group_cv_.wait(lock, [&] { return group.queued == 0 && group.running == 0; });
}

bool Scheduler::RunIfQueued(const std::shared_ptr<Group>& group, uint64_t id) {
  Task task;
  {
    std::lock_guard lock(mu_);
    bool found = false;
    for (size_t c = 0; c < kTaskClassCount && !found; ++c) {
      auto& q = queues_[c];
      auto it = std::find_if(q.begin(), q.end(), [&](const Task& t) { return t.id == id; });
      if (it == q.end() || it->group != group) continue;
      // Only a task no thread will take soon: its class or group is at its
      // cap, or every thread is busy and no more may start.
      const bool starved = running_[c] >= options_.max_running[c] || group->running >= group->max_running ||
                           (idle_threads_ == 0 && threads_.size() >= options_.max_threads);
      if (!starved) return false;
      task = std::move(*it);
      q.erase(it);
      found = true;
    }
    if (!found) return false;
    --group->queued;
    ++group->running;
    ++running_[static_cast<size_t>(task.cls)];
  }
  RunTask(std::move(task), false);
  return true;
}

bool Scheduler::PickLocked(Clock::time_point now, size_t* cls, size_t* pos, Clock::time_point* wake) const {
  *wake = Clock::time_point::max();
  bool higher_waiting = false;  // a task of a higher class could run but for its cap or its time
  for (size_t c = 0; c < kTaskClassCount; ++c) {
    const auto& q = queues_[c];
    if (q.empty()) continue;
    const bool capped = running_[c] >= options_.max_running[c];
    const bool yields = c == static_cast<size_t>(TaskClass::kPrefetchAll) &&
                        (foreground_.load(std::memory_order_acquire) > 0 || higher_waiting);
    for (size_t i = 0; i < q.size(); ++i) {
      if (q[i].not_before > now) {
        *wake = std::min(*wake, q[i].not_before);
        continue;
      }
      if (capped || yields) break;
      if (q[i].group->running >= q[i].group->max_running) continue;
      *cls = c;
      *pos = i;
      return true;
    }
    if (c < static_cast<size_t>(TaskClass::kPrefetchAll)) {
      higher_waiting = higher_waiting || std::any_of(q.begin(), q.end(), [&](const Task& t) {
                         return t.not_before <= now;
                       });
    }
  }
  return false;
}

void Scheduler::TaskEndedLocked(Task& task) {
  --running_[static_cast<size_t>(task.cls)];
  ++ran_[static_cast<size_t>(task.cls)];
  --task.group->running;
}

void Scheduler::RunTask(Task task, bool idle_policy) {
  if (idle_policy) {
    sched_param param{};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
  }
  task.fn();
  if (idle_policy) {
    sched_param param{};
    pthread_setschedparam(pthread_self(), SCHED_OTHER, &param);
  }
  std::function<void()> fn = std::move(task.fn);  // destroyed after the task counts as ended
  std::shared_ptr<Group> group = task.group;
  {
    std::lock_guard lock(mu_);
    TaskEndedLocked(task);
  }
  group_cv_.notify_all();
  work_cv_.notify_one();  // a cap freed
  fn = nullptr;
  task.group.reset();
  group.reset();
}

void Scheduler::WorkerLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stop_) return;
    size_t c = 0, pos = 0;
    Clock::time_point wake;
    if (!PickLocked(Clock::now(), &c, &pos, &wake)) {
      ++idle_threads_;
      if (wake == Clock::time_point::max()) {
        work_cv_.wait(lock);
      } else {
        work_cv_.wait_until(lock, wake);
      }
      --idle_threads_;
      continue;
    }
    Task task = std::move(queues_[c][pos]);
    queues_[c].erase(queues_[c].begin() + static_cast<ptrdiff_t>(pos));
    if (c == static_cast<size_t>(TaskClass::kPrefetchAll)) prefetch_all_waiting_ = !queues_[c].empty();
    --task.group->queued;
    ++task.group->running;
    ++running_[c];
    lock.unlock();
    RunTask(std::move(task), c == static_cast<size_t>(TaskClass::kDerivedWrites));
    lock.lock();
  }
}

}  // namespace ocifs
