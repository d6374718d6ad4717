// MountCgroups: keeps each volume's mount processes (its keeper and serving
// processes, docs/keeper.md) in a cgroup v2 directory outside the plugin's
// own cgroup, so that a restart of the plugin's container, which kills every
// process of the container's cgroup (`cgroup.kill`), leaves the mounts up
// (`oci-fs csi --mount-cgroup DIR`, docs/kubernetes.md).
//
// Layout: DIR/<key> per published target, <key> being the target's record
// name in the state dir (volume_store.h: a hash of the target path; a volume
// id is not unique on a node, a target is). One cgroup per volume so that a
// volume's memory and CPU can be read (and limited) on its own, and so that
// unpublish can end whatever of that volume still runs, and only that.
//
// How a process gets there: the launcher's forked child, before it execs
// `oci-fs mount`, writes "0" to DIR/<key>/cgroup.procs (it moves itself);
// the daemon it forks, the keeper, inherits the cgroup, as do the serving
// processes the keeper starts. Nothing of the volume ever runs in the
// plugin's cgroup, so there is no window in which a container restart could
// catch it. When the plugin's cgroup namespace is not PID 1's (a container
// with a private cgroup namespace, containerd's default on cgroup v2), the
// child first joins PID 1's (with hostPID, the host's): a cgroup2 hierarchy
// mounted with nsdelegate refuses moves to a cgroup outside the writer's
// namespace.
//
// Thread-safe: the members are set once by Init; the rest is the filesystem.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "ocifs/status.h"

namespace ocifs {

class MountCgroups {
 public:
  // `root` "" = disabled: mounts stay in the plugin's cgroup.
  explicit MountCgroups(std::string root) : root_(std::move(root)) {}

  bool enabled() const { return !root_.empty(); }
  const std::string& root() const { return root_; }

  // Creates `root` if missing; kInvalidArgument unless it is a directory of
  // a cgroup v2 hierarchy that can hold processes. Opens PID 1's cgroup
  // namespace if it is not ours (kept for the plugin's lifetime).
  Status Init();

  // The cgroup of the volume at `target`: root/<key>.
  std::string PathFor(const std::string& target) const;

  // Creates the volume's cgroup (an existing one is reused: a remount).
  Status Create(const std::string& target) const;

  // What a forked child needs to move itself there without allocating: the
  // absolute path of cgroup.procs and the cgroup namespace fd to join first
  // (-1: none). Valid while this object lives.
  struct ChildMove {
    std::string procs_path;
    int cgroup_ns_fd = -1;
  };
  ChildMove MoveFor(const std::string& target) const;

  // After the volume's mount is gone: waits up to `grace` for its processes
  // to exit on their own (the keeper exits after its unmount and removes its
  // state file), kills what is left (cgroup.kill), and removes the cgroup.
  // OK if there was none.
  Status Remove(const std::string& target,
                std::chrono::milliseconds grace = std::chrono::seconds(10)) const;

  // Removes the empty cgroups under root that belong to none of `targets`
  // (left by a plugin killed between an unmount and its clean-up). Returns
  // how many it removed.
  int RemoveOrphans(const std::vector<std::string>& targets) const;

 private:
  std::string root_;
  UniqueFd host_cgroup_ns_;
};

}  // namespace ocifs
