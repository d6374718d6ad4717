#include "decode/pass_progress.h"

#include "ocifs/byte_source.h"

namespace ocifs {

void PassProgress::Follow(BackgroundPass& pass) {
  pass_ = &pass;
  pass.OnCancel([this] {
    std::lock_guard lock(mu_);
    if (state_.load() != kRunning) return;  // complete stays complete; a failure stays
    failure_ = Cancelled(what_ + " cancelled");
    state_.store(kFailed, std::memory_order_release);
    cv_.notify_all();
  });
}

void PassProgress::Advance(uint64_t bytes) {
  {
    std::lock_guard lock(mu_);
    produced_.store(bytes, std::memory_order_release);
  }
  cv_.notify_all();
}

void PassProgress::Complete(uint64_t size) {
  std::lock_guard lock(mu_);
  if (state_.load() == kFailed) return;
  produced_.store(size, std::memory_order_relaxed);
  state_.store(kComplete, std::memory_order_release);
  cv_.notify_all();
}

void PassProgress::Fail(Status status) {
  std::lock_guard lock(mu_);
  if (state_.load() == kComplete) return;
  failure_ = std::move(status);
  state_.store(kFailed, std::memory_order_release);
  cv_.notify_all();
}

void PassProgress::Finish() {
  std::lock_guard lock(mu_);
  finished_ = true;
  cv_.notify_all();
}

void PassProgress::NeedPass() const {
  if (pass_ != nullptr) pass_->Need();
}

Result<PassProgress::Produced> PassProgress::WaitFor(uint64_t end) const {
  // The fast path: no lock while the bytes are there.
  const State state = state_.load(std::memory_order_acquire);
  if (state == kComplete) return Produced{produced_.load(std::memory_order_relaxed), true};
  if (state == kRunning) {
    const uint64_t bytes = produced_.load(std::memory_order_acquire);
    if (bytes >= end) return Produced{bytes, false};
    NeedPass();  // a read never waits for a pass nobody runs
  }
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return state_.load() != kRunning || produced_.load() >= end; });
  if (state_.load() == kFailed) return failure_;
  return Produced{produced_.load(), state_.load() == kComplete};
}

Result<std::optional<PassProgress::Produced>> PassProgress::WaitForOr(uint64_t end,
                                                                      const std::function<bool()>& give_up) const {
  const State state = state_.load(std::memory_order_acquire);
  if (state == kComplete) return std::optional(Produced{produced_.load(std::memory_order_relaxed), true});
  if (state == kRunning) {
    const uint64_t bytes = produced_.load(std::memory_order_acquire);
    if (bytes >= end) return std::optional(Produced{bytes, false});
    NeedPass();
  }
  std::unique_lock lock(mu_);
  bool gave_up = false;
  cv_.wait(lock, [&] {
    if (state_.load() != kRunning || produced_.load() >= end) return true;
    gave_up = give_up();
    return gave_up;
  });
  if (gave_up) return std::optional<Produced>();
  if (state_.load() == kFailed) return failure_;
  return std::optional(Produced{produced_.load(), state_.load() == kComplete});
}

void PassProgress::Wake() const {
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
}

bool PassProgress::WaitUntilFinishedFor(std::chrono::milliseconds budget) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, budget, [&] { return (state_.load() == kComplete && finished_) || state_.load() == kFailed; });
}

Status PassProgress::WaitUntilFinished() const {
  if (state_.load(std::memory_order_acquire) == kRunning) NeedPass();
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return (state_.load() == kComplete && finished_) || state_.load() == kFailed; });
  return failure_;
}

Status PassProgress::failure() const {
  if (state_.load(std::memory_order_acquire) != kFailed) return Status::Ok();
  std::lock_guard lock(mu_);
  return failure_;
}

uint64_t PassProgress::size() const {
  if (state_.load(std::memory_order_acquire) != kComplete) return ByteSource::kUnknownSize;
  return produced_.load(std::memory_order_relaxed);
}

}  // namespace ocifs
