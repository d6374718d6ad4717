#include "csi/volume_manager.h"

#include <algorithm>

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "csi/auth_file.h"
#include "csi/mount_probe.h"

#ifndef OCIFS_VERSION
#define OCIFS_VERSION "0.0.0"
#endif

namespace ocifs {
namespace {

Status EnsureDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0750) == 0 || errno == EEXIST) return Status::Ok();
  return ErrnoError("create target " + path, errno);
}

}  // namespace

VolumeManager::VolumeManager(const VolumeStore* store, const MountLauncher* launcher, VolumeCredentials* credentials)
    : store_(store), launcher_(launcher), credentials_(credentials) {}

std::shared_ptr<std::mutex> VolumeManager::TargetLock(const std::string& target) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& m = target_mu_[target];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

std::optional<VolumeRecord> VolumeManager::Find(const std::string& target) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = volumes_.find(target);
  if (it == volumes_.end()) return std::nullopt;
  return it->second;
}

void VolumeManager::Put(const VolumeRecord& record) {
  std::lock_guard<std::mutex> lock(mu_);
  volumes_[record.spec.target_path] = record;
}

void VolumeManager::Erase(const std::string& target) {
  std::lock_guard<std::mutex> lock(mu_);
  volumes_.erase(target);
}

size_t VolumeManager::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return volumes_.size();
}

Status VolumeManager::Publish(const VolumeSpec& spec,
                              const std::optional<std::string>& docker_config) {
  const std::string& target = spec.target_path;
  auto target_mu = TargetLock(target);
  std::lock_guard<std::mutex> lock(*target_mu);

  if (auto existing = Find(target)) {
    if (!existing->spec.SameAs(spec)) {
      return AlreadyExists("target " + target + " already holds volume " +
                           existing->spec.volume_id + " (image " + existing->spec.image +
                           "), published with other attributes");
    }
    if (credentials_) OCIFS_RETURN_IF_ERROR(credentials_->Republish(*existing, docker_config));
    MountProbeState state = ProbeMount(target);
    if (state == MountProbeState::kHealthy) return Status::Ok();
    if (state == MountProbeState::kStalled) {  // mounted: a remount would not reach the files already open
      spdlog::warn("csi: volume {} at {} is stalled; leaving it", spec.volume_id, target);
      return Status::Ok();
    }
    spdlog::warn("csi: volume {} at {} is not answering; remounting", spec.volume_id, target);
    return Repair(*existing);
  }
  if (IsMountPoint(target)) {
    return AlreadyExists("target " + target + " is already a mount point not made by oci-fs csi");
  }

  OCIFS_RETURN_IF_ERROR(EnsureDir(target));
  VolumeRecord record;
  record.spec = spec;
  if (credentials_) {
    if (Status s = credentials_->Prepare(&record, docker_config); !s.ok()) {
      RemoveAuthFile(store_->AuthFilePath(target));
      credentials_->Forget(target);
      ::rmdir(target.c_str());
      return s;
    }
  } else if (docker_config) {
    record.auth_file = store_->AuthFilePath(target);
    record.auth_source = "secret";
    if (Status s = WriteAuthFile(record.auth_file, *docker_config); !s.ok()) {
      return s.WithContext("volume " + spec.volume_id + ": credentials");
    }
  }
  auto fail = [&](const Status& s) {
    RemoveAuthFile(record.auth_file);
    (void)launcher_->ReleaseCgroup(target);  // whatever a failed mount left
    if (credentials_) credentials_->Forget(target);
    ::rmdir(target.c_str());  // only if empty: we made it
    spdlog::warn("csi: publish {} at {}: {}", spec.volume_id, target, s.ToString());
    return s;
  };
  auto pinned = launcher_->Resolve(record);
  if (!pinned.ok()) return fail(pinned.status());
  record.digest = pinned->digest;
  record.accel = pinned->accel;
  if (Status s = launcher_->Mount(record); !s.ok()) return fail(s);
  record.mount_pid = FindMountProcess(target).value_or(0);
  record.ocifs_version = OCIFS_VERSION;
  if (Status s = store_->Save(record); !s.ok()) {
    (void)launcher_->Unmount(target);
    return fail(s.WithContext("record volume " + spec.volume_id));
  }
  Put(record);
  spdlog::info("csi: published {} ({}) at {}, pid {}", spec.volume_id, record.PinnedRef(), target,
               record.mount_pid);
  return Status::Ok();
}

Status VolumeManager::Teardown(const std::string& target, const std::optional<VolumeRecord>& record,
                               bool remove_dir) {
  std::string fstype;
  if (IsMountPoint(target, &fstype)) {
    if (!record && fstype.rfind("fuse", 0) != 0) {
      return Internal("target " + target + " holds a " + fstype +
                      " mount that oci-fs csi did not make; not unmounting it");
    }
    OCIFS_RETURN_IF_ERROR(launcher_->Unmount(target));
  }
  if (Status s = launcher_->ReleaseCgroup(target); !s.ok()) spdlog::warn("csi: {}", s.ToString());
  if (record) {
    OCIFS_RETURN_IF_ERROR(store_->Remove(target));
    RemoveAuthFile(record->auth_file);
  }
  RemoveAuthFile(store_->AuthFilePath(target));
  if (credentials_) credentials_->Forget(target);
  Erase(target);
  if (remove_dir && ::rmdir(target.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("csi: cannot remove target {}: {}", target, std::strerror(errno));
  }
  return Status::Ok();
}

Status VolumeManager::Unpublish(const std::string& volume_id, const std::string& target) {
  if (volume_id.empty()) return InvalidArgument("volume_id is required");
  if (target.empty()) return InvalidArgument("target_path is required");
  auto target_mu = TargetLock(target);
  std::lock_guard<std::mutex> lock(*target_mu);
  auto record = Find(target);
  if (record && record->spec.volume_id != volume_id) {
    spdlog::warn("csi: unpublish of {} at {}, which holds volume {}; unmounting anyway", volume_id,
                 target, record->spec.volume_id);
  }
  OCIFS_RETURN_IF_ERROR(Teardown(target, record, /*remove_dir=*/true));
  if (record) spdlog::info("csi: unpublished {} from {}", volume_id, target);
  return Status::Ok();
}

Status VolumeManager::Repair(VolumeRecord record) {
  const std::string& target = record.spec.target_path;
  OCIFS_RETURN_IF_ERROR(launcher_->Unmount(target));  // a dead mount: lazy detach
  OCIFS_RETURN_IF_ERROR(EnsureDir(target));
  OCIFS_RETURN_IF_ERROR(launcher_->Mount(record));
  record.mount_pid = FindMountProcess(target).value_or(0);
  record.ocifs_version = OCIFS_VERSION;
  OCIFS_RETURN_IF_ERROR(store_->Save(record));
  Put(record);
  remounts_.fetch_add(1);
  spdlog::info("csi: remounted {} ({}) at {}, pid {}", record.spec.volume_id, record.PinnedRef(),
               target, record.mount_pid);
  return Status::Ok();
}

Result<VolumeStats> VolumeManager::Stats(const std::string& volume_id, const std::string& path) {
  if (volume_id.empty()) return InvalidArgument("volume_id is required");
  if (path.empty()) return InvalidArgument("volume_path is required");
  auto record = Find(path);
  if (!record || record->spec.volume_id != volume_id) {
    return NotFound("volume " + volume_id + " is not published at " + path);
  }
  VolumeStats stats;
  const MountProbe probe = ProbeMountWithUsage(path);
  const MountProbeState state = probe.state;
  if (state == MountProbeState::kStalled) {
    stats.abnormal = true;
    stats.condition = "mount at " + path + " is stalled: it did not answer stat/statfs within " +
                      std::to_string(kProbeTimeoutMs / 1000) +
                      " s (its serving process is stopped, or every FUSE thread is stuck)";
    return stats;
  }
  if (state != MountProbeState::kHealthy) {
    stats.abnormal = true;
    stats.condition = "mount at " + path + " is " + std::string(MountStateName(state)) +
                      (state == MountProbeState::kDisconnected ? " (its serving process is gone: reads fail with ENOTCONN)"
                                                          : "") +
                      "; the plugin remounts it";
    return stats;
  }
  PublishedMount published = ReadPublished(PublishedStateDir(), path, NowMs());
  if (!published.state.empty()) {
    stats.abnormal = true;
    stats.condition = "mount at " + path + " is " + published.problem;
    return stats;
  }
  // The probe's own statvfs: this thread never calls into the mount, so a
  // daemon that stops after the probe cannot block the RPC.
  if (!probe.usage) return Unavailable("statvfs of " + path + " gave no usage (the mount answered stat only)");
  const struct statvfs& vfs = *probe.usage;
  const int64_t unit = static_cast<int64_t>(vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize);
  stats.total_bytes = static_cast<int64_t>(vfs.f_blocks) * unit;
  stats.available_bytes = static_cast<int64_t>(vfs.f_bavail) * unit;
  stats.used_bytes = stats.total_bytes - static_cast<int64_t>(vfs.f_bfree) * unit;
  stats.total_inodes = static_cast<int64_t>(vfs.f_files);
  stats.available_inodes = static_cast<int64_t>(vfs.f_favail);
  stats.used_inodes = static_cast<int64_t>(vfs.f_files - vfs.f_ffree);
  return stats;
}

std::vector<VolumeSample> VolumeManager::Samples() const {
  std::vector<VolumeRecord> records;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [target, r] : volumes_) records.push_back(r);
  }
  std::vector<VolumeSample> out;
  const std::string dir = PublishedStateDir();
  const int64_t now = NowMs();
  std::vector<std::string> targets;
  for (const VolumeRecord& r : records) targets.push_back(r.spec.target_path);
  // All at once: a scrape waits one probe timeout however many mounts are stalled.
  const std::vector<MountProbeState> states = ProbeMounts(targets);
  for (size_t i = 0; i < records.size(); ++i) {
    const VolumeRecord& r = records[i];
    VolumeSample v;
    v.volume_id = r.spec.volume_id;
    v.target = r.spec.target_path;
    v.published = ReadPublished(dir, v.target, now);
    const MountProbeState state = states[i];
    v.state = state == MountProbeState::kHealthy ? (v.published.state.empty() ? "healthy" : v.published.state)
                                            : std::string(MountStateName(state));
    std::replace(v.state.begin(), v.state.end(), ' ', '_');
    out.push_back(std::move(v));
  }
  return out;
}

void VolumeManager::Recover() {
  std::vector<VolumeRecord> records = store_->LoadAll();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& r : records) volumes_[r.spec.target_path] = r;
  }
  // All targets are probed at once (one deadline for all: a node whose
  // mounts all stalled recovers in one probe's time, not one per volume).
  std::vector<std::string> targets;
  for (const auto& r : records) targets.push_back(r.spec.target_path);
  const std::vector<MountProbeState> states = ProbeMounts(targets);
  int adopted = 0, repaired = 0, dropped = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const VolumeRecord& record = records[i];
    const std::string& target = record.spec.target_path;
    auto target_mu = TargetLock(target);
    std::lock_guard<std::mutex> lock(*target_mu);
    if (!Find(target)) continue;  // unpublished meanwhile
    const MountProbeState state = states[i];
    if (state == MountProbeState::kMissing) {
      (void)Teardown(target, record, /*remove_dir=*/false);
      ++dropped;
      spdlog::info("csi: dropped stale record of {} ({} is gone)", record.spec.volume_id, target);
    } else if (state == MountProbeState::kHealthy || state == MountProbeState::kStalled) {
      ++adopted;
      if (record.ocifs_version != OCIFS_VERSION) Upgrade(record);
    } else if (Status s = Repair(record); s.ok()) {
      ++repaired;
    } else {
      spdlog::error("csi: cannot remount {} at {}: {}", record.spec.volume_id, target, s.ToString());
    }
  }
  std::vector<std::string> live;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [target, unused] : volumes_) live.push_back(target);
  }
  if (int n = launcher_->RemoveOrphanCgroups(live); n > 0) {
    spdlog::info("csi: removed {} empty mount cgroups of volumes no longer published", n);
  }
  ready_ = true;
  spdlog::info("csi: recovery done: {} adopted, {} remounted, {} dropped", adopted, repaired,
               dropped);
}

void VolumeManager::Upgrade(VolumeRecord record) {
  const std::string& target = record.spec.target_path;
  if (Status s = launcher_->Restart(target, record.mount_pid); !s.ok()) {
    spdlog::warn("csi: {} at {} stays on oci-fs {}: {}", record.spec.volume_id, target,
                 record.ocifs_version.empty() ? "(unknown)" : record.ocifs_version, s.ToString());
    return;
  }
  spdlog::info("csi: restarted {} at {}: oci-fs {} -> {}", record.spec.volume_id, target,
               record.ocifs_version.empty() ? "(unknown)" : record.ocifs_version, OCIFS_VERSION);
  record.ocifs_version = OCIFS_VERSION;
  if (Status s = store_->Save(record); !s.ok()) spdlog::warn("csi: {}", s.ToString());
  Put(record);
}

void VolumeManager::RepairDead() {
  std::vector<std::string> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [target, r] : volumes_) targets.push_back(target);
  }
  // All at once first: a pass waits one probe timeout however many mounts are stalled.
  const std::vector<MountProbeState> first = ProbeMounts(targets);
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string& target = targets[i];
    auto target_mu = TargetLock(target);
    std::unique_lock<std::mutex> lock(*target_mu, std::try_to_lock);
    if (!lock.owns_lock()) continue;  // being published or unpublished right now
    auto record = Find(target);
    if (!record) continue;
    if (credentials_) credentials_->Refresh(*record);
    // A mount seen dead is probed again under its lock (it may have been repaired meanwhile).
    MountProbeState state = first[i];
    if (state == MountProbeState::kDisconnected || state == MountProbeState::kNotMounted) state = ProbeMount(target);
    // A stalled mount is reported (Stats), not remounted: its VM's open files stay on it.
    if (state == MountProbeState::kHealthy || state == MountProbeState::kMissing || state == MountProbeState::kStalled) continue;
    spdlog::warn("csi: mount of {} at {} is {}; remounting", record->spec.volume_id, target,
                 MountStateName(state));
    if (Status s = Repair(*record); !s.ok()) {
      spdlog::error("csi: cannot remount {} at {}: {}", record->spec.volume_id, target,
                    s.ToString());
    }
  }
}

}  // namespace ocifs
