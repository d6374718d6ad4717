// ReadaheadPolicy: how far ahead of the reads of one source to fetch (policy
// only; CachedSource does the fetching).
//
// It follows up to kStreams concurrent streams (the kernel's readahead splits
// one file read into several in-flight requests, and a decoder's sequential
// pass runs beside the foreground reads). A read that starts within the
// stream's window of where the stream ended (in either direction: in-flight
// requests arrive out of order) continues it; any other read starts a new
// stream in the least recently used slot and asks for nothing (random access
// stays at the size the reader asked for).
//
// A stream's window starts at `initial` once it has read `min_run` bytes in
// order in at least `min_reads` reads (so the small clustered reads of a random access, say several qcow2
// clusters of one guest read, do not count as sequential). The policy asks for the range [prefetched, read end + window) once
// less than half a window is prefetched ahead of the read, and doubles the
// window after each such ask up to `max` (1, 2, 4 .. 16 MiB), so fetches are
// issued a window at a time and overlap with the reads they serve.
//
// Thread safety: safe for concurrent use (one mutex, held for a few
// comparisons). Units: bytes.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>

#include "ocifs/byte_source.h"

namespace ocifs {

struct ReadaheadOptions {
  uint64_t initial = 1ull << 20;  // first window of a sequential stream
  uint64_t max = 16ull << 20;     // the window never grows past this; 0 = never read ahead
  uint64_t min_run = 2ull << 20;  // bytes a stream reads in order before its first window
  uint32_t min_reads = 2;         // ... in at least this many reads (one large read is not a stream)
};

class ReadaheadPolicy {
 public:
  static constexpr size_t kStreams = 8;

  explicit ReadaheadPolicy(ReadaheadOptions options = {}) : options_(options) {}

  // Records a read of [offset, offset + length) of a source of `size` bytes;
  // returns the range to fetch ahead now, if any (never past size, never
  // overlapping what this stream was already told to fetch).
  std::optional<ByteRange> OnRead(uint64_t offset, uint64_t length, uint64_t size);

  // The current window of the stream a read at `offset` would continue (0: none); for tests.
  uint64_t WindowAt(uint64_t offset) const;

 private:
  struct Stream {
    uint64_t start = 0;       // where the stream began
    uint64_t end = 0;         // the furthest byte read + 1
    uint64_t prefetched = 0;  // bytes before this are fetched or being fetched
    uint64_t window = 0;      // 0 until the stream is found sequential
    uint32_t reads = 0;       // reads that began or continued it
    uint64_t used = 0;        // recency stamp; 0 = free slot
  };
  // The stream a read at `offset` continues, or null. Needs mu_.
  Stream* Find(uint64_t offset);

  const ReadaheadOptions options_;
  mutable std::mutex mu_;
  std::array<Stream, kStreams> streams_{};  // guarded by mu_
  uint64_t clock_ = 0;                      // guarded by mu_
};

}  // namespace ocifs
