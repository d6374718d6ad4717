// What a volume's mount publishes about itself, read by the plugin: the
// counters of its serving processes (fuse/mount_stats.h, summed), its
// keeper's takeovers (fuse/mount_state.h), and the verdict the plugin draws
// from them for NodeGetVolumeStats and /metrics.
//
// A mount that answers stat(2) may still be of no use to its VM:
//  - stalled: its newest serving process has not rewritten its counters for
//    kStalledAfter (they are written every second by a housekeeping task, so
//    the process is stopped, or its scheduler is starved or wedged; the
//    plugin also calls a mount stalled when it does not answer stat/statfs
//    within kProbeTimeoutMs, csi/mount_probe.h, which catches a stopped
//    process at once);
//  - failing: a FUSE read failed within kFailingFor (a poisoned disk, a
//    registry that refuses the blob, a corrupt layer), with the error.
//
// Thread safety: free functions over files and plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "fuse/mount_stats.h"

namespace ocifs {

inline constexpr int64_t kStalledAfterMs = 30'000;
inline constexpr int64_t kFailingForMs = 60'000;

struct PublishedMount {
  std::optional<MountStats> stats;  // summed over the mount's serving processes; none published yet
  uint64_t takeovers = 0;           // from the keeper's state file (0 without one)
  std::string state;                // "" (nothing wrong seen), "stalled" or "failing"
  std::string problem;              // why, for a person ("" with an empty state)
};

// Reads what the mount at `target` published in `state_dir` and judges it at `now_ms`.
PublishedMount ReadPublished(const std::string& state_dir, const std::string& target, int64_t now_ms);

// The verdict alone (for tests): sets state and problem of `published` from its stats.
void JudgePublished(PublishedMount* published, int64_t now_ms);

int64_t NowMs();
// Where mounts publish (fuse/mount_state.h's MountStateDir()); for callers
// that cannot include that header (csi/mount_probe.h's names must not clash with it).
std::string PublishedStateDir();

}  // namespace ocifs
