// MountLauncher: the plugin's only way to touch images and mounts. It runs
// the `oci-fs` executable: `inspect --json` to pin a tag to a digest, and
// `mount` (which daemonizes and exits 0 once the mount is ready) in its own
// session, so mounts outlive a restart of the plugin. It unmounts with
// `fusermount3 -u`, falling back to umount2(MNT_DETACH).
//
// Registry options: the node-wide defaults (--cert-dir, --authfile,
// --tls-verify) unless the volume overrides them (its own credentials file,
// its tlsVerify attribute). Credentials travel as a file path only.
// Thread-safe: no mutable state; calls block for up to `timeout`.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "csi/volume_store.h"
#include "ocifs/status.h"

namespace ocifs {

struct LauncherConfig {
  std::string oci_fs_binary;  // absolute path of the oci-fs executable
  std::string cache_dir;      // shared by every mount: "" = oci-fs's default
  std::string cert_dir;       // node-wide default, "" = none
  std::string authfile;       // node-wide default, "" = oci-fs's default search
  bool tls_verify = true;     // node-wide default
  bool allow_other = true;    // let the pod's user read the mount
  std::chrono::milliseconds timeout{std::chrono::minutes(3)};
};

class MountLauncher {
 public:
  explicit MountLauncher(LauncherConfig config) : config_(std::move(config)) {}

  // The manifest digest ("sha256:...") `record.spec.image` resolves to now.
  Result<std::string> ResolveDigest(const VolumeRecord& record) const;

  // Mounts record.PinnedRef() at the record's target (which must exist) and
  // returns once the mount answers. On failure no mount is left behind.
  Status Mount(const VolumeRecord& record) const;

  // Unmounts `target` if anything is mounted there (a dead mount too).
  Status Unmount(const std::string& target) const;

  // The argv of each step; exposed for tests (they check no secret leaks in).
  std::vector<std::string> InspectArgv(const VolumeRecord& record) const;
  std::vector<std::string> MountArgv(const VolumeRecord& record) const;

 private:
  std::vector<std::string> RegistryArgs(const VolumeRecord& record) const;

  LauncherConfig config_;
};

}  // namespace ocifs
