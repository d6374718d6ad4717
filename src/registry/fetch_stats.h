// FetchStats: process-wide counters of what the registry module fetched.
#pragma once

#include <atomic>
#include <cstdint>

#include "base/latency_histogram.h"

namespace ocifs {

// Thread safety: lock-free atomics; relaxed increments from any thread.
// Units: blob_bytes counts body bytes of blob responses (after the 2xx status),
// including bytes skipped when a server ignored a Range header.
// blob_requests counts HTTP requests for blob bytes (redirect hops and stored
// locations each count); blob_fetches counts range reads (RegistrySession::
// ReadBlobRange calls), blob_fetch_errors those that failed, and
// fetch_latency times each range read from its first request to its last byte.
struct FetchStats {
  std::atomic<uint64_t> blob_requests{0}, blob_bytes{0}, manifest_requests{0};
  std::atomic<uint64_t> blob_fetches{0}, blob_fetch_errors{0};
  LatencyHistogram fetch_latency;
};

// The one instance for the process.
FetchStats& GlobalFetchStats();

}  // namespace ocifs
