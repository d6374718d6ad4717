// SegmentCache: a small LRU of decompressed segments (a gzip checkpoint span,
// a zstd frame), keyed by segment number, so neighbouring reads do not
// decompress the same segment again.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

// Thread safety: safe for concurrent use. Concurrent GetOrLoad calls for one
// key run the loader once; the others wait for it. Loaders run without the
// cache's lock held. Memory: at most max_bytes of buffers plus the ones
// callers still hold, plus one buffer per loader in flight.
class SegmentCache {
 public:
  using Buffer = std::shared_ptr<const std::vector<uint8_t>>;
  using Loader = std::function<Result<Buffer>()>;

  // max_bytes: total buffer bytes kept; max_entries: buffers kept (>= 1).
  SegmentCache(uint64_t max_bytes, size_t max_entries);
  SegmentCache(const SegmentCache&) = delete;
  SegmentCache& operator=(const SegmentCache&) = delete;

  // The cached buffer for `key` if it holds at least min_size bytes, else the
  // loader's buffer (cached if it is not larger than max_bytes). A loader's
  // error is returned to every caller waiting on it and nothing is cached.
  [[nodiscard]] Result<Buffer> GetOrLoad(uint64_t key, size_t min_size, const Loader& loader);

  // Caches `buffer` for `key`, replacing a shorter one.
  void Put(uint64_t key, Buffer buffer);

 private:
  struct Entry {
    Buffer buffer;
    std::list<uint64_t>::iterator lru;
  };
  struct Inflight {
    bool done = false;
    Status status;
  };
  void PutLocked(uint64_t key, Buffer buffer);

  const uint64_t max_bytes_;
  const size_t max_entries_;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::unordered_map<uint64_t, Entry> entries_;
  std::list<uint64_t> lru_;  // front = most recently used
  uint64_t bytes_ = 0;
  std::unordered_map<uint64_t, std::shared_ptr<Inflight>> inflight_;
};

}  // namespace ocifs
