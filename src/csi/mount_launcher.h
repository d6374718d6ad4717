// MountLauncher: the plugin's only way to touch images and mounts. It runs
// the `oci-fs` executable: `inspect --json` to pin a tag to a digest, and
// `mount` (which daemonizes and exits 0 once the mount is ready) in its own
// session, so mounts outlive a restart of the plugin, and, with
// LauncherConfig::cgroups, in the volume's own cgroup outside the plugin's,
// so they outlive a restart of its container too (mount_cgroup.h). It unmounts with
// `fusermount3 -u`, falling back to umount2(MNT_DETACH).
//
// What each mount is asked to do is one MountConfig: the node's defaults
// (cache dir, --cert-dir, --authfile, --tls-verify, allow_other), the
// volume's attributes applied over them through the option table, and the
// volume's own credentials file. It reaches `oci-fs mount` as the flags that
// ToArgs spells (config/config_builder.h). Credentials travel as a file path
// only.
// Thread-safe: no mutable state; calls block for up to `timeout`.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "config/mount_config.h"
#include "csi/mount_cgroup.h"
#include "csi/volume_store.h"
#include "ocifs/status.h"

namespace ocifs {

struct LauncherConfig {
  std::string oci_fs_binary;  // absolute path of the oci-fs executable
  // Node-wide defaults of every mount (absolute paths; cache_dir shared by
  // every mount, "" = oci-fs's default). allow_other lets the pod's user read it.
  MountConfig defaults = [] {
    MountConfig c;
    c.allow_other = true;
    return c;
  }();
  std::chrono::milliseconds timeout{std::chrono::minutes(3)};
  // Where each volume's mount processes live (borrowed, outlives the
  // launcher); nullptr or disabled = the plugin's own cgroup.
  const MountCgroups* cgroups = nullptr;
};

class MountLauncher {
 public:
  explicit MountLauncher(LauncherConfig config) : config_(std::move(config)) {}

  // What `record.spec.image` resolves to now: its manifest digest, and the
  // acceleration artifact next to it if the volume's accel is auto.
  struct Pinned {
    std::string digest;  // "sha256:..."
    std::string accel;   // REGISTRY/REPO@sha256:.., or "" (none, or accel is not auto)
  };
  Result<Pinned> Resolve(const VolumeRecord& record) const;

  // Mounts record.PinnedRef() at the record's target (which must exist),
  // with the artifact record.accel when there is one, and returns once the
  // mount answers. On failure no mount is left behind.
  Status Mount(const VolumeRecord& record) const;

  // Unmounts `target` if anything is mounted there (a dead mount too).
  Status Unmount(const std::string& target) const;

  // After `target` is unmounted for good: ends what is left of its mount
  // processes and removes its cgroup (MountCgroups::Remove); OK without one.
  Status ReleaseCgroup(const std::string& target) const;
  // MountCgroups::RemoveOrphans; 0 without cgroups.
  int RemoveOrphanCgroups(const std::vector<std::string>& live_targets) const;

  // `oci-fs restart TARGET`: a serving process of this plugin's oci-fs takes
  // the kept mount at `target` over (docs/keeper.md). When the keeper
  // `keeper_pid` runs in another mount namespace (an older container's), with
  // `--binary /proc/<our pid>/root<our oci-fs>`.
  Status Restart(const std::string& target, pid_t keeper_pid = 0) const;

  // The configuration of `record`'s mount: the node's defaults, its
  // attributes, its pinned artifact, its credentials file.
  // kInvalidArgument for a bad attribute.
  Result<MountConfig> VolumeConfig(const VolumeRecord& record) const;

  // The argv of each step; exposed for tests (they check no secret leaks in).
  Result<std::vector<std::string>> InspectArgv(const VolumeRecord& record) const;
  Result<std::vector<std::string>> MountArgv(const VolumeRecord& record) const;

 private:

  LauncherConfig config_;
};

}  // namespace ocifs
