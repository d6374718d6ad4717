// MountWatcher: a thread that calls VolumeManager::RepairDead() every
// `interval`, so a mount whose `oci-fs mount` process died is replaced while
// the plugin runs. Stops (and joins) in its destructor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "csi/volume_manager.h"

namespace ocifs {

class MountWatcher {
 public:
  MountWatcher(VolumeManager* manager, std::chrono::milliseconds interval);
  MountWatcher(const MountWatcher&) = delete;
  MountWatcher& operator=(const MountWatcher&) = delete;
  ~MountWatcher();

 private:
  void Run();

  VolumeManager* manager_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace ocifs
