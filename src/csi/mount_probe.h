// Looking at a target directory from the outside: is something mounted
// there, is its FUSE daemon still alive, which process serves it.
//
// A FUSE mount whose daemon died stays in the mount table; every stat or
// read of it fails with ENOTCONN ("Transport endpoint is not connected").
// That is how a dead `oci-fs mount` is recognised. A FUSE daemon that is
// stopped (SIGSTOP) or wedged never answers: a stat(2) of its mount blocks
// until it does, so ProbeMount makes its calls that reach the daemon in a
// child process and gives up after kProbeTimeoutMs. All functions are
// thread-safe; they read /proc and stat(2) the path.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace ocifs {

enum class MountState {
  kMissing,       // the path does not exist
  kNotMounted,    // a plain directory
  kHealthy,       // a mount point that answers
  kDisconnected,  // a FUSE mount whose daemon is gone (ENOTCONN)
  kStalled,       // a mount point whose daemon did not answer within the probe's timeout
};

// How long ProbeMount waits for stat(2) and statfs(2) of the path (ms).
inline constexpr int kProbeTimeoutMs = 5000;

std::string_view MountStateName(MountState state);

// Blocks at most about `timeout_ms` (+1 s to reap the child it kills).
MountState ProbeMount(const std::string& path, int timeout_ms = kProbeTimeoutMs);

// Whether /proc/self/mountinfo lists `path` as a mount point (octal escapes
// decoded); `fstype` receives its filesystem type (e.g. "fuse.oci-fs").
bool IsMountPoint(const std::string& path, std::string* fstype = nullptr);

// The pid of the daemon of `target`, found in /proc: its keeper (`oci-fs
// keeper ... TARGET`, docs/keeper.md), else a `... mount ... TARGET` process
// (a mount without a keeper). Both end in the target.
std::optional<pid_t> FindMountProcess(const std::string& target);

}  // namespace ocifs
