#include "csi/mount_watcher.h"

namespace ocifs {

MountWatcher::MountWatcher(VolumeManager* manager, std::chrono::milliseconds interval)
    : manager_(manager), interval_(interval), thread_([this] { Run(); }) {}

MountWatcher::~MountWatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void MountWatcher::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
    lock.unlock();
    if (manager_->ready()) manager_->RepairDead();
    lock.lock();
  }
}

}  // namespace ocifs
