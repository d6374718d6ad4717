// LruPolicy: recency and the choice of victims (policy only; no I/O).
//
// Two recency signals (docs/cache-format.md, "Eviction"):
//  - shared between processes: a chunk file's mtime, refreshed on a hit at
//    most once per touch interval per chunk (Use() says when);
//  - this process's own, exact order of use, kept here.
// A file ranks by the later of the two. Times are wall-clock ns since the
// epoch (CLOCK_REALTIME), so they compare with mtimes.
//
// Thread safety: safe for concurrent use; mu_ guards all state and is held
// only for a few map operations (never during I/O).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <time.h>
#include <tsl/robin_map.h>

namespace ocifs {

// Now on the wall clock (CLOCK_REALTIME), ns since the epoch, like mtimes.
inline int64_t WallClockNs() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

class LruPolicy {
 public:
  // max_entries: chunks remembered; beyond it the least recent are forgotten
  // (they then rank by mtime alone). touch_interval_ns: the least time between
  // two mtime refreshes of one chunk by this process.
  LruPolicy(size_t max_entries, int64_t touch_interval_ns)
      : max_entries_(max_entries), touch_interval_ns_(touch_interval_ns) {}
  LruPolicy(const LruPolicy&) = delete;
  LruPolicy& operator=(const LruPolicy&) = delete;

  // Records a use of chunk (key, index) at now_ns. Returns true when the
  // caller should refresh the file's mtime: this process has not written nor
  // refreshed it within the touch interval. `written`: the file was just
  // written, so its mtime is already now. No allocation for a known chunk.
  bool Use(std::string_view key, uint64_t index, int64_t now_ns, bool written);
  void Forget(std::string_view key, uint64_t index);
  // This process's last use of the chunk, or 0 if unknown.
  int64_t LastUse(std::string_view key, uint64_t index) const;
  size_t tracked() const;

  struct Candidate {
    int64_t recency_ns = 0;  // max(mtime, LastUse)
    uint64_t bytes = 0;
  };
  // Positions in `candidates` to evict, least recent first, whose bytes sum to
  // at least bytes_to_free (every position if the total is less).
  static std::vector<size_t> ChooseVictims(const std::vector<Candidate>& candidates,
                                           uint64_t bytes_to_free);

 private:
  struct ChunkId {
    uint32_t blob;
    uint64_t index;
    bool operator==(const ChunkId&) const = default;
  };
  struct ChunkIdHash {
    size_t operator()(const ChunkId& id) const {
      return std::hash<uint64_t>{}(id.index * 0x9e3779b97f4a7c15ull ^ id.blob);
    }
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Entry {
    ChunkId id;
    int64_t last_use;
    int64_t last_touch;  // last time the file's mtime was set (by a write or a refresh)
  };
  using Order = std::list<Entry>;

  // The interned id of `key`, or UINT32_MAX if unknown and !create. mu_ held.
  uint32_t BlobId(std::string_view key, bool create);

  const size_t max_entries_;
  const int64_t touch_interval_ns_;
  mutable std::mutex mu_;
  // Guarded by mu_. Interned keys; never shrinks (a mount sees few blobs).
  tsl::robin_map<std::string, uint32_t, StringHash, std::equal_to<>> blobs_;
  // Guarded by mu_. order_ is most recent first; entries_ indexes it.
  Order order_;
  tsl::robin_map<ChunkId, Order::iterator, ChunkIdHash> entries_;
};

}  // namespace ocifs
