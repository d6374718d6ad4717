// ClusterCache: a byte-bounded LRU of immutable buffers keyed by a 64-bit id,
// with single-flight loading. The qcow2 view keeps two: L2 tables (keyed by
// their host offset) and decompressed clusters (keyed by their L2 entry).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include <tsl/robin_map.h>

#include "ocifs/status.h"

namespace ocifs {

using CachedBuffer = std::shared_ptr<const std::vector<uint8_t>>;

// Thread safety: safe for concurrent use. One mutex guards the index, the LRU
// list and the in-flight table; loaders run outside it, so a slow load (an
// inner read, a decompression) never blocks hits on other keys.
// Single flight: while one caller loads a key, other callers of the same key
// wait for that load and share its result (value or error). Errors are not
// cached; the next caller after a failed load tries again.
// Capacity: the sum of buffer sizes (bytes) kept; the least recently used
// buffers are dropped beyond it. A buffer larger than the capacity is handed
// out but not kept. Buffers handed out stay valid while the caller holds them.
class ClusterCache {
 public:
  using Loader = std::function<Result<CachedBuffer>()>;

  explicit ClusterCache(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}
  ClusterCache(const ClusterCache&) = delete;
  ClusterCache& operator=(const ClusterCache&) = delete;

  // The cached buffer for `key`, or the result of `load()` (called at most
  // once across concurrent callers of the same key).
  [[nodiscard]] Result<CachedBuffer> GetOrLoad(uint64_t key, const Loader& load);

  // The cached buffer for `key` if present (refreshes its LRU position), else null.
  CachedBuffer Lookup(uint64_t key);

  uint64_t capacity() const { return capacity_; }
  uint64_t used_bytes() const;
  size_t entries() const;
  // Number of loader calls made so far (for tests and stats).
  uint64_t loads() const;

 private:
  struct Node {
    uint64_t key;
    CachedBuffer value;
  };
  struct InFlight {
    bool done = false;
    Status status;
    CachedBuffer value;
  };

  CachedBuffer LookupLocked(uint64_t key);
  void InsertLocked(uint64_t key, CachedBuffer value);

  const uint64_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable loaded_;  // signalled when any in-flight load finishes
  // Guarded by mu_: front = most recently used.
  std::list<Node> lru_;
  tsl::robin_map<uint64_t, std::list<Node>::iterator> index_;
  tsl::robin_map<uint64_t, std::shared_ptr<InFlight>> in_flight_;
  uint64_t used_ = 0;
  uint64_t loads_ = 0;
};

}  // namespace ocifs
