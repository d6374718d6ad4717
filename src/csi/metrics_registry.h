// MetricsRegistry: the plugin's /metrics page (Prometheus text format 0.0.4,
// docs/metrics.md) from what its volumes' mounts publish (fuse/mount_stats.h)
// and the plugin's own counters.
//
// Counters of a volume that goes away (unpublished, or its mount replaced by
// a remount, whose new serving processes count from zero) are kept in a
// retired total, so every *_total series only grows while the plugin runs.
// Gauges describe the volumes published now.
//
// Thread safety: Render may be called from several threads (the HTTP server's);
// a mutex serialises them (mu_ guards last_ and retired_).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "csi/mount_health.h"

namespace ocifs {

// One published volume as the plugin sees it now.
struct VolumeSample {
  std::string volume_id;
  std::string target;
  std::string state;  // healthy, disconnected, not_mounted, missing, stalled, failing
  PublishedMount published;
};

// The plugin's own counters.
struct PluginSample {
  uint64_t remounts = 0;  // dead mounts the plugin brought back
};

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The page for these volumes; remembers their counters (see above).
  std::string Render(const std::vector<VolumeSample>& volumes, const PluginSample& plugin);

 private:
  // What one mount contributes: the sum over its serving processes, its keeper's takeovers.
  struct Kept {
    MountStats stats;
    uint64_t takeovers = 0;
  };
  // Whether `now` counts from a new start (a remount, a mount ended): some counter went down.
  static bool Shrank(const Kept& before, const Kept& now);

  std::mutex mu_;
  std::map<std::string, Kept> last_;  // target -> its latest counters; guarded by mu_
  std::vector<Kept> retired_;          // volumes gone or remounted; guarded by mu_
};

}  // namespace ocifs
