#include "csi/mount_launcher.h"

#include <spdlog/spdlog.h>
#include <sys/mount.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <thread>

#include "csi/mount_probe.h"
#include "csi/process_error.h"
#include "csi/subprocess.h"

namespace ocifs {

std::vector<std::string> MountLauncher::RegistryArgs(const VolumeRecord& record) const {
  std::vector<std::string> args;
  const std::string& authfile = record.auth_file.empty() ? config_.authfile : record.auth_file;
  if (!authfile.empty()) args.insert(args.end(), {"--authfile", authfile});
  if (!config_.cert_dir.empty()) args.insert(args.end(), {"--cert-dir", config_.cert_dir});
  bool tls_verify = record.spec.tls_verify.value_or(config_.tls_verify);
  if (!tls_verify) args.push_back("--tls-verify=false");
  if (!record.spec.platform.empty()) args.insert(args.end(), {"--platform", record.spec.platform});
  return args;
}

std::vector<std::string> MountLauncher::InspectArgv(const VolumeRecord& record) const {
  std::vector<std::string> argv{config_.oci_fs_binary, "inspect"};
  auto reg = RegistryArgs(record);
  argv.insert(argv.end(), reg.begin(), reg.end());
  argv.insert(argv.end(), {"--json", record.spec.image});
  return argv;
}

std::vector<std::string> MountLauncher::MountArgv(const VolumeRecord& record) const {
  std::vector<std::string> argv{config_.oci_fs_binary, "mount"};
  auto reg = RegistryArgs(record);
  argv.insert(argv.end(), reg.begin(), reg.end());
  if (!config_.cache_dir.empty()) argv.insert(argv.end(), {"--cache-dir", config_.cache_dir});
  if (record.spec.mode == "tree") argv.insert(argv.end(), {"--mode", "tree"});
  if (!record.spec.disk_path.empty()) {
    argv.insert(argv.end(), {"--disk-path", record.spec.disk_path});
  }
  if (record.spec.prefetch_all) argv.push_back("--prefetch-all");
  if (!record.spec.prefetch_rate.empty()) argv.insert(argv.end(), {"--prefetch-rate", record.spec.prefetch_rate});
  if (!record.spec.image_profile) argv.insert(argv.end(), {"--prefetch-profile", "none"});
  if (!record.spec.cluster_cache) argv.insert(argv.end(), {"--cluster-cache", "off"});
  argv.insert(argv.end(), {"-o", config_.allow_other ? "ro,allow_other" : "ro"});
  argv.insert(argv.end(), {record.PinnedRef(), record.spec.target_path});
  return argv;
}

Result<std::string> MountLauncher::ResolveDigest(const VolumeRecord& record) const {
  const std::string what = "resolve " + record.spec.image;
  OCIFS_ASSIGN_OR_RETURN(ProcessResult run,
                         RunProcess({InspectArgv(record), config_.timeout, false}));
  if (!run.ok()) return StatusFromProcessFailure(what, run);
  auto json = nlohmann::json::parse(run.out, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object() || !json.contains("digest") ||
      !json["digest"].is_string()) {
    return Internal(what + ": `oci-fs inspect --json` printed no \"digest\"");
  }
  std::string digest = json["digest"].get<std::string>();
  if (digest.rfind("sha256:", 0) != 0 && digest.rfind("sha512:", 0) != 0) {
    return Internal(what + ": unexpected digest \"" + digest + "\"");
  }
  return digest;
}

Status MountLauncher::Mount(const VolumeRecord& record) const {
  const std::string& target = record.spec.target_path;
  const std::string what = "mount " + record.PinnedRef() + " at " + target;
  OCIFS_ASSIGN_OR_RETURN(ProcessResult run,
                         RunProcess({MountArgv(record), config_.timeout, /*new_session=*/true}));
  if (!run.ok()) {
    // oci-fs leaves no mount behind on failure; make sure (timeouts).
    if (IsMountPoint(target)) (void)Unmount(target);
    return StatusFromProcessFailure(what, run);
  }
  // oci-fs returns once the mount is ready; confirm it answers.
  for (int i = 0; i < 100; ++i) {
    MountState state = ProbeMount(target);
    if (state == MountState::kHealthy) return Status::Ok();
    if (state == MountState::kDisconnected) break;
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

}  // namespace ocifs
