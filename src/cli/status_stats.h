// What `oci-fs status` shows of a kept mount's published counters
// (fuse/mount_stats.h): as JSON for --json, as text lines (with a progress
// bar on a terminal) otherwise. Plain functions; no state.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "fuse/mount_stats.h"

namespace ocifs {

// The "stats" object of a status entry (docs/mount-state-format.md):
// disk_layer, disk_layer_bytes, disk_layer_cached (0..1, the largest layer:
// a containerDisk's disk), cached (0..1, every layer), bytes_fetched,
// requests, reads, errors {fuse_read, blob_fetch, cache_corrupt},
// background_fetch {enabled, chunks, total_chunks, fraction},
// serving_processes, updated_ms.
nlohmann::json StatusStatsJson(const MountStats& stats);

// The lines `status` prints for that object, indented like its others;
// `tty`: draw the cached fraction as a bar.
std::string StatusStatsText(const nlohmann::json& stats, bool tty);

}  // namespace ocifs
