// FetchStrategy: one policy of what to fetch beyond a read's own bytes, beside
// the cache stage (CachedSource) that stores and finds chunks. The strategies
// a blob gets are chosen in one place (fetch_policy.h); each fetches through
// the blob's BlobFetcher, so the cache's single flight keeps any chunk from
// being fetched twice.
//
//   ReadaheadStrategy  a growing window ahead of sequential streams
//   MissStrategy       a small miss fetches its own bytes first; a miss brings its group
//   ProfilePrefetch    the chunks an access profile names, in its order
//   PrefetchAll        the whole blob in idle time, paced to a rate
//   (recording)        AccessRecorder sees every read's bytes
//
// Thread safety: implementations are safe for concurrent use; OnRead and
// OnMiss run on foreground reading threads and must not block beyond what
// they fetch for that read.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "ocifs/status.h"

namespace ocifs {

class AccessProfile;

// One foreground read of a blob: bytes [offset, offset + length), chunks [first, last].
struct BlobRead {
  uint64_t offset = 0;
  size_t length = 0;
  uint64_t first = 0;
  uint64_t last = 0;
  // Served by a strategy's Serve (from bytes it keeps apart from the chunks):
  // strategies that fetch around reads (read-ahead) leave it alone.
  bool served = false;
};

class FetchStrategy {
 public:
  virtual ~FetchStrategy() = default;
  // A short name for logs and tests ("readahead", "miss", "profile", "prefetch-all", "record").
  virtual std::string name() const = 0;
  // Every foreground read, before it is served.
  virtual void OnRead(const BlobRead&) {}
  // A read that was not a cheap chunk hit, before any chunk is fetched for it:
  // true if the strategy served it from bytes it keeps itself (a profile's
  // pieces, fetched finer than chunks), buf filled. May wait for a fetch of
  // those bytes already in flight. Then OnRead sees it with served = true.
  [[nodiscard]] virtual Result<bool> Serve(const BlobRead&, std::span<uint8_t> /*buf*/) { return false; }
  // Whether every byte of [offset, offset + length) is kept or being fetched
  // by the strategy apart from the chunks (so a Prefetch hint of it needs no
  // chunk). A hint; must not block.
  virtual bool Holds(uint64_t /*offset*/, uint64_t /*length*/) const { return false; }
  // Whether OnMiss wants reads none of whose chunks is on disk or in flight
  // (finding out costs a lookup per chunk).
  virtual bool WantsMisses() const { return false; }
  // Such a read: true if the strategy served it (buf filled); false if the
  // stage should read its chunks (the strategy may have fetched them).
  [[nodiscard]] virtual Result<bool> OnMiss(const BlobRead&, std::span<uint8_t> /*buf*/) { return false; }
  // A profile found after the blob was opened (one shipped in the image):
  // true if this strategy started fetching it.
  virtual bool StartProfile(const AccessProfile&) { return false; }
  // Blocks until the strategy's background fetches are done (tests, benchmarks).
  virtual void Wait() {}
};

}  // namespace ocifs
