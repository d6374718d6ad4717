// VolumeManager: the node plugin's state machine, free of gRPC.
//
// It owns the in-memory table of published volumes (target path -> record),
// keeps it in step with the VolumeStore on disk, and drives MountLauncher.
//  - Publish: idempotent per target. Resolves the tag to a digest once,
//    writes the volume's credentials file, mounts, records.
//  - Unpublish: idempotent; unmounts whatever is at the target (dead or
//    not), drops the record and credentials file, removes the directory.
//  - Recover: after a restart, adopts recorded mounts that answer, replaces
//    dead ones (same target, same pinned digest), drops records whose target
//    is gone. Until it has run, ready() is false.
//  - RepairDead: the watcher's periodic pass over live volumes (remounts
//    dead ones, refreshes credentials from providers).
//
// Thread-safe. Locking: a per-target mutex serializes all work on one target
// (slow: runs processes); `mu_` guards the tables and is held only briefly.
// Order: target mutex before `mu_`. Different targets proceed in parallel.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "csi/metrics_registry.h"
#include "csi/mount_launcher.h"
#include "csi/volume_credentials.h"
#include "csi/volume_spec.h"
#include "csi/volume_store.h"
#include "ocifs/status.h"

namespace ocifs {

struct VolumeStats {
  bool abnormal = false;
  std::string condition;  // why it is abnormal
  int64_t total_bytes = 0, used_bytes = 0, available_bytes = 0;
  int64_t total_inodes = 0, used_inodes = 0, available_inodes = 0;
};

class VolumeManager {
 public:
  // Borrows all; they must outlive the manager. `credentials` may be null:
  // volumes then use their secret only, never rotated.
  VolumeManager(const VolumeStore* store, const MountLauncher* launcher, VolumeCredentials* credentials = nullptr);
  VolumeManager(const VolumeManager&) = delete;
  VolumeManager& operator=(const VolumeManager&) = delete;

  // `docker_config`: this volume's secret (JSON text), if any; without one a
  // credential provider's may be used (VolumeCredentials). A repeated publish
  // with a changed secret rewrites the volume's credentials file.
  Status Publish(const VolumeSpec& spec, const std::optional<std::string>& docker_config);
  Status Unpublish(const std::string& volume_id, const std::string& target);
  // NotFound if nothing of ours is published at `path` for `volume_id`.
  Result<VolumeStats> Stats(const std::string& volume_id, const std::string& path);

  // Every published volume, probed now (a stat of each target, all at once:
  // at most about kProbeTimeoutMs + kProbeReapMs), with what its mount published.
  std::vector<VolumeSample> Samples() const;
  uint64_t remounts() const { return remounts_.load(); }

  void Recover();
  void RepairDead();
  bool ready() const { return ready_.load(); }
  size_t size() const;

 private:
  std::shared_ptr<std::mutex> TargetLock(const std::string& target);
  std::optional<VolumeRecord> Find(const std::string& target) const;
  void Put(const VolumeRecord& record);
  void Erase(const std::string& target);
  // Brings the mount of `record` back at its target; target mutex held.
  Status Repair(VolumeRecord record);
  // A healthy mount served by another oci-fs version: `oci-fs restart` hands
  // it to a serving process of this one; target mutex held. Logged, not fatal.
  void Upgrade(VolumeRecord record);
  // Unmounts and forgets `target`; target mutex held.
  Status Teardown(const std::string& target, const std::optional<VolumeRecord>& record,
                  bool remove_dir);

  const VolumeStore* store_;
  const MountLauncher* launcher_;
  VolumeCredentials* credentials_;
  std::atomic<bool> ready_{false};
  std::atomic<uint64_t> remounts_{0};  // successful Repair calls

  mutable std::mutex mu_;
  std::map<std::string, VolumeRecord> volumes_;                   // guarded by mu_
  std::map<std::string, std::shared_ptr<std::mutex>> target_mu_;  // guarded by mu_
};

}  // namespace ocifs
