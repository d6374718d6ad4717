#include "csi/mount_launcher.h"

#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <thread>

#include "config/config_builder.h"
#include "csi/mount_probe.h"
#include "csi/process_error.h"
#include "csi/subprocess.h"

namespace ocifs {
namespace {

// Whether both paths name one inode (namespace files: the same namespace).
// Unknown (either missing) counts as the same.
bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return true;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool AccelIsAuto(const MountConfig& config) { return config.accel.empty() || config.accel == "auto"; }

}  // namespace

Result<MountConfig> MountLauncher::VolumeConfig(const VolumeRecord& record) const {
  MountConfigBuilder builder(config_.defaults);
  for (const auto& [attribute, value] : record.spec.attributes) {
    Status s = builder.SetVolumeAttribute(attribute, value);
    if (s.code() == Code::kNotFound) return InvalidArgument("unknown volume attribute \"" + attribute + "\"");
    OCIFS_RETURN_IF_ERROR(s);
  }
  OCIFS_ASSIGN_OR_RETURN(MountConfig config, builder.Build("/"));
  if (!record.auth_file.empty()) config.authfile = record.auth_file;
  if (!record.accel.empty() && AccelIsAuto(config)) config.accel = record.accel;
  return config;
}

Result<std::vector<std::string>> MountLauncher::InspectArgv(const VolumeRecord& record) const {
  OCIFS_ASSIGN_OR_RETURN(MountConfig config, VolumeConfig(record));
  std::vector<std::string> argv{config_.oci_fs_binary, "inspect"};
  auto flags = ToArgs(config, /*registry_only=*/true);
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.insert(argv.end(), {"--json", record.spec.image});
  return argv;
}

Result<std::vector<std::string>> MountLauncher::MountArgv(const VolumeRecord& record) const {
  OCIFS_ASSIGN_OR_RETURN(MountConfig config, VolumeConfig(record));
  std::vector<std::string> argv{config_.oci_fs_binary, "mount"};
  auto flags = ToArgs(config);
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.insert(argv.end(), {"-o", "ro", record.PinnedRef(), record.spec.target_path});
  return argv;
}

Result<MountLauncher::Pinned> MountLauncher::Resolve(const VolumeRecord& record) const {
  const std::string what = "resolve " + record.spec.image;
  OCIFS_ASSIGN_OR_RETURN(std::vector<std::string> argv, InspectArgv(record));
  OCIFS_ASSIGN_OR_RETURN(ProcessResult run, RunProcess({std::move(argv), config_.timeout, false}));
  if (!run.ok()) return StatusFromProcessFailure(what, run);
  auto json = nlohmann::json::parse(run.out, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object() || !json.contains("digest") ||
      !json["digest"].is_string()) {
    return Internal(what + ": `oci-fs inspect --json` printed no \"digest\"");
  }
  Pinned pinned;
  pinned.digest = json["digest"].get<std::string>();
  if (pinned.digest.rfind("sha256:", 0) != 0 && pinned.digest.rfind("sha512:", 0) != 0) {
    return Internal(what + ": unexpected digest \"" + pinned.digest + "\"");
  }
  // The artifact inspect found (docs/cli.md): pinned, so that a remount of
  // this volume reads with the index it was published with.
  OCIFS_ASSIGN_OR_RETURN(MountConfig config, VolumeConfig(record));
  auto accel = json.find("accel");
  if (AccelIsAuto(config) && accel != json.end() && accel->is_object() && accel->contains("reference") &&
      (*accel)["reference"].is_string()) {
    const std::string ref = (*accel)["reference"].get<std::string>();
    if (ref.find("@sha256:") != std::string::npos) pinned.accel = ref;
  }
  return pinned;
}

Status MountLauncher::Mount(const VolumeRecord& record) const {
  const std::string& target = record.spec.target_path;
  const std::string what = "mount " + record.PinnedRef() + " at " + target;
  OCIFS_ASSIGN_OR_RETURN(std::vector<std::string> argv, MountArgv(record));
  ProcessSpec spec{std::move(argv), config_.timeout, /*new_session=*/true};
  if (config_.cgroups && config_.cgroups->enabled()) {
    OCIFS_RETURN_IF_ERROR(config_.cgroups->Create(target));
    MountCgroups::ChildMove move = config_.cgroups->MoveFor(target);
    spec.cgroup_procs = move.procs_path;
    spec.cgroup_ns_fd = move.cgroup_ns_fd;
  }
  OCIFS_ASSIGN_OR_RETURN(ProcessResult run, RunProcess(spec));
  if (!run.ok()) {
    // oci-fs leaves no mount behind on failure; make sure (timeouts).
    if (IsMountPoint(target)) (void)Unmount(target);
    return StatusFromProcessFailure(what, run);
  }
  // oci-fs returns once the mount is ready; confirm it answers.
  for (int i = 0; i < 100; ++i) {
    MountProbeState state = ProbeMount(target);
    if (state == MountProbeState::kHealthy) return Status::Ok();
    if (state == MountProbeState::kDisconnected || state == MountProbeState::kStalled) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  (void)Unmount(target);
  return Internal(what + ": oci-fs exited 0 but " + target + " is " +
                  std::string(MountStateName(ProbeMount(target))));
}

Status MountLauncher::Unmount(const std::string& target) const {
  if (!IsMountPoint(target)) return Status::Ok();
  auto run = RunProcess({{"fusermount3", "-u", target}, std::chrono::seconds(30), false});
  if (run.ok() && run->ok() && !IsMountPoint(target)) return Status::Ok();
  if (run.ok() && !run->ok()) {
    spdlog::info("csi: fusermount3 -u {}: {}; detaching", target, run->err);
  }
  if (::umount2(target.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return ErrnoError("unmount " + target, errno);
  }
  if (IsMountPoint(target)) return Internal("unmount " + target + ": still mounted");
  return Status::Ok();
}

Status MountLauncher::ReleaseCgroup(const std::string& target) const {
  if (!config_.cgroups) return Status::Ok();
  return config_.cgroups->Remove(target);
}

int MountLauncher::RemoveOrphanCgroups(const std::vector<std::string>& live_targets) const {
  return config_.cgroups ? config_.cgroups->RemoveOrphans(live_targets) : 0;
}

Status MountLauncher::Restart(const std::string& target, pid_t keeper_pid) const {
  std::vector<std::string> argv{config_.oci_fs_binary, "restart"};
  // The keeper execs PATH in its own mount namespace, the one of the
  // container that started it (docs/kubernetes.md, "Rollout"). If that is not
  // ours, name our binary through our root, which a process of the host's
  // PID namespace can reach; else the keeper's default (the mount's binary
  // path, i.e. what is on disk there now) is ours already.
  if (keeper_pid > 0 && !SameFile("/proc/self/ns/mnt", "/proc/" + std::to_string(keeper_pid) + "/ns/mnt")) {
    argv.insert(argv.end(), {"--binary", "/proc/" + std::to_string(::getpid()) + "/root" + config_.oci_fs_binary});
  }
  argv.push_back(target);
  auto run = RunProcess({std::move(argv), std::chrono::minutes(2), false});
  if (!run.ok()) return run.status();
  if (!run->ok()) return StatusFromProcessFailure("oci-fs restart " + target, *run);
  return Status::Ok();
}

}  // namespace ocifs
