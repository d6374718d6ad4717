#include "decode/background_pass.h"

namespace ocifs {

BackgroundPass::BackgroundPass(std::shared_ptr<Scheduler> scheduler, std::string name, std::function<void()> body)
    : body_(std::move(body)), group_(std::move(scheduler), std::move(name)) {
  group_.OnCancel([this] { cancelled_.store(true); });
}

BackgroundPass::~BackgroundPass() {
  group_.Cancel();  // runs the hooks (the owner's wake-up too) while the owner is still whole
  group_.Wait();
}

void BackgroundPass::Start() {
  std::lock_guard lock(mu_);
  if (started_) return;
  started_ = true;
  id_ = group_.Post(TaskClass::kFirstPass, body_);
}

void BackgroundPass::Need() {
  Start();
  TaskGroup::TaskId id;
  {
    std::lock_guard lock(mu_);
    id = id_;
  }
  group_.RunIfQueued(id);
}

bool BackgroundPass::started() const {
  std::lock_guard lock(mu_);
  return started_;
}

}  // namespace ocifs
