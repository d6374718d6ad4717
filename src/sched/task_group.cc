#include "sched/task_group.h"

namespace ocifs {

TaskGroup::TaskGroup(std::shared_ptr<Scheduler> scheduler, std::string name, Limits limits)
    : scheduler_(scheduler ? std::move(scheduler) : Scheduler::Shared()), group_(std::make_shared<Scheduler::Group>()) {
  group_->name = std::move(name);
  group_->max_queued = limits.max_queued;
  group_->max_running = limits.max_running;
  scheduler_->Register(group_);
}

TaskGroup::~TaskGroup() {
  Cancel();
  Wait();
  scheduler_->Unregister(*group_);
}

TaskGroup::TaskId TaskGroup::Post(TaskClass cls, std::function<void()> task, Scheduler::Clock::time_point not_before) {
  return scheduler_->Enqueue(group_, cls, not_before, std::move(task));
}

bool TaskGroup::RunIfQueued(TaskId id) { return id != 0 && scheduler_->RunIfQueued(group_, id); }

void TaskGroup::Cancel() { scheduler_->CancelGroup(group_); }

bool TaskGroup::cancelled() const { return group_->cancelled.load(); }

void TaskGroup::OnCancel(std::function<void()> hook) {
  {
    std::lock_guard lock(scheduler_->mu_);
    if (!group_->cancelled.load()) {
      group_->cancel_hooks.push_back(std::move(hook));
      return;
    }
  }
  hook();
}

void TaskGroup::Wait() { scheduler_->WaitGroup(*group_); }

}  // namespace ocifs
