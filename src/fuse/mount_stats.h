// MountStats: the counters one serving process of a mount publishes
// (docs/mount-stats-format.md), one file per serving process beside the
// mount's state file: `<state dir>/<hash>.<pid>.stats`. A takeover starts a
// new file; readers (`oci-fs status`, the CSI plugin's /metrics) sum the
// counters of every file of the mount and take the gauges (cache usage, what
// is cached of each layer) from the newest. The keeper removes the files when
// the mount ends.
//
// Thread safety: plain values and free functions. SaveMountStats replaces
// the file atomically (write a temporary, rename): a reader sees a whole file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/latency_histogram.h"
#include "ocifs/status.h"

namespace ocifs {

struct LayerCacheStats {
  std::string digest;
  uint64_t size = 0;           // bytes of the (compressed) blob
  uint64_t chunks = 0;         // chunks of the cache's chunk size it spans
  uint64_t cached_chunks = 0;  // of those, stored in the cache now
};

struct MountStats {
  // Identity of the serving process (one "generation" of the mount).
  pid_t pid = 0;
  int64_t started_ms = 0;  // the process's start, ms since the epoch
  int64_t updated_ms = 0;  // when this file was written, ms since the epoch
  std::string mountpoint;  // absolute
  std::string reference;   // as mounted (a later server's is pinned to the digest)
  std::string registry;    // the reference's registry host ("" for an oci: layout)
  bool accel = false;          // an acceleration artifact is in use
  bool prefetch_all = false;   // the whole of every layer is fetched in the background

  // Counters (monotonic within a process; summed across processes).
  uint64_t fuse_reads = 0, fuse_read_errors = 0, fuse_read_bytes = 0;
  HistogramCounts fuse_read_latency;
  uint64_t blob_requests = 0, blob_bytes = 0, blob_fetches = 0, blob_fetch_errors = 0, manifest_requests = 0;
  HistogramCounts fetch_latency;
  uint64_t cache_hits = 0, cache_misses = 0, cache_evictions = 0, cache_corrupt_dropped = 0;
  uint64_t cluster_cache_hits = 0, cluster_cache_dropped = 0;
  // The newest process's last failed FUSE read: its error, and when (ms since the epoch; 0: none).
  std::string last_read_error;
  int64_t last_read_error_ms = 0;

  // Gauges (the newest process's values).
  bool cache = false;  // a cache directory is in use (the cache fields below mean something)
  uint64_t cache_used_bytes = 0, cache_bound_bytes = 0;
  std::vector<LayerCacheStats> layers;

  // Set by SumMountStats: how many serving processes the sum covers.
  uint64_t generations = 1;

  std::string ToJson() const;
  // kCorrupt naming the field at fault.
  [[nodiscard]] static Result<MountStats> FromJson(const std::string& text);
};

// "<dir>/<hash of mountpoint>.<pid>.stats" (MountStatePath's hash).
std::string MountStatsPath(const std::string& dir, const std::string& mountpoint, pid_t pid);
[[nodiscard]] Status SaveMountStats(const std::string& dir, const MountStats& stats);
// Every stats file of `mountpoint` in `dir` that parses, oldest process first.
std::vector<MountStats> LoadMountStats(const std::string& dir, const std::string& mountpoint);
// Removes every stats file of `mountpoint` in `dir`.
void RemoveMountStats(const std::string& dir, const std::string& mountpoint);
// One MountStats for the whole mount: counters summed, gauges and identity
// from the newest process (the last one). `generations` = parts.size().
// NotFound if `parts` is empty.
[[nodiscard]] Result<MountStats> SumMountStats(const std::vector<MountStats>& parts);

}  // namespace ocifs
