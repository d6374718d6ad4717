// FetchStats: process-wide counters of what the registry module fetched.
#pragma once

#include <atomic>
#include <cstdint>

namespace ocifs {

// Thread safety: lock-free atomics; relaxed increments from any thread.
// Units: blob_bytes counts body bytes of blob responses (after the 2xx status),
// including bytes skipped when a server ignored a Range header.
struct FetchStats {
  std::atomic<uint64_t> blob_requests{0}, blob_bytes{0}, manifest_requests{0};
};

// The one instance for the process.
FetchStats& GlobalFetchStats();

}  // namespace ocifs
