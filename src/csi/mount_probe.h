// Looking at a target directory from the outside: is something mounted
// there, is its FUSE daemon still alive, which process serves it.
//
// A FUSE mount whose daemon died stays in the mount table; every stat or
// read of it fails with ENOTCONN ("Transport endpoint is not connected").
// That is how a dead `oci-fs mount` is recognised. A FUSE daemon that is
// stopped (SIGSTOP) or wedged never answers: a stat(2) of its mount blocks
// until it does, so ProbeMount makes its calls that reach the daemon in a
// child process and gives up after kProbeTimeoutMs. ProbeMounts probes many
// paths at once, one child each, under one deadline, so that a scrape of
// every volume waits one timeout however many of them are stalled. All
// functions are thread-safe; they read /proc and stat(2) the path.
#pragma once

#include <sys/statvfs.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ocifs {

// What a probe of a mount path found. (Not named MountState: that is the
// keeper's published record, fuse/mount_state.h, and two types of one name in
// one namespace break the one-definition rule: std::vector<MountState> of the
// two shared one instantiation, which ASan caught as a stack overflow.)
enum class MountProbeState {
  kMissing,       // the path does not exist
  kNotMounted,    // a plain directory
  kHealthy,       // a mount point that answers
  kDisconnected,  // a FUSE mount whose daemon is gone (ENOTCONN)
  kStalled,       // a mount point whose daemon did not answer within the probe's timeout
};

// How long ProbeMount waits for stat(2) and statfs(2) of the path (ms).
inline constexpr int kProbeTimeoutMs = 5000;

std::string_view MountStateName(MountProbeState state);

// How long a probe waits, after its deadline, for the children it killed
// to exit (ms); one that has not (blocked in a request the daemon already
// took) is reaped by a later probe.
inline constexpr int kProbeReapMs = 500;

// Blocks at most about `timeout_ms` + kProbeReapMs.
MountProbeState ProbeMount(const std::string& path, int timeout_ms = kProbeTimeoutMs);

// ProbeMount, with the statvfs(2) numbers its child saw when the mount is
// healthy: a caller that wants a mount's usage takes them from here rather
// than calling statvfs itself, which would block for as long as the daemon
// does not answer (a daemon that stops right after the probe). usage is
// nullopt unless state is kHealthy (and then only if statvfs answered).
struct MountProbe {
  MountProbeState state = MountProbeState::kMissing;
  std::optional<struct statvfs> usage;
};
MountProbe ProbeMountWithUsage(const std::string& path, int timeout_ms = kProbeTimeoutMs);

// ProbeMount of every path at once: the states in the order of `paths`.
// Blocks at most about `timeout_ms` + kProbeReapMs whatever the number of
// paths. A path whose child from an earlier probe is still blocked in the
// mount (its daemon took that request and has not answered since) is
// kStalled at once, with no second child.
std::vector<MountProbeState> ProbeMounts(const std::vector<std::string>& paths, int timeout_ms = kProbeTimeoutMs);

// Whether /proc/self/mountinfo lists `path` as a mount point (octal escapes
// decoded); `fstype` receives its filesystem type (e.g. "fuse.oci-fs").
bool IsMountPoint(const std::string& path, std::string* fstype = nullptr);

// The pid of the daemon of `target`, found in /proc: its keeper (`oci-fs
// keeper ... TARGET`, docs/keeper.md), else a `... mount ... TARGET` process
// (a mount without a keeper). Both end in the target.
std::optional<pid_t> FindMountProcess(const std::string& target);

}  // namespace ocifs
