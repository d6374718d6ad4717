// SharedPassProgress: how far a gzip layer's first pass in one process has
// kept its output in the cache's "<digest>:decoded" chunks, told to the other
// processes sharing the cache dir, so that a mount following that pass (its
// pass lease is held elsewhere: GzipFirstPass) serves the reads behind it at
// once instead of waiting for the whole pass to end. One small file per
// layer, leases/<digest>.gzprogress, mapped MAP_SHARED by every process and
// changed with atomic operations (docs/cache-format.md "A gzip layer's first
// pass", which gives the layout).
//
// The pass that holds the layer's pass lease writes it (Restart before its
// first output, Publish per chunk in order, Withdraw if it fails); any other
// process reads it (Load, IsZero). What it says: chunks [0, count) of the
// layer's decompressed output, each chunk_size bytes, were stored in the
// chunk cache (or, when all zero, only noted as zero here) by that pass. A
// reader must still find each stored chunk in the cache (it may be evicted)
// and gets the bytes checked by the chunk's CRC; a reader that finds one
// missing waits for the pass's index as before. The output of a layer is the
// same whichever process inflates it, so what a pass that died stored stays
// right; a pass that fails (a corrupt layer) withdraws what it published.
//
// Thread safety: safe for concurrent use by any thread and process (every
// shared word is accessed atomically). Only the lease holder writes.
// Units: bytes for sizes, chunks for counts.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "ocifs/status.h"

namespace ocifs {

class SharedPassProgress {
 public:
  // Chunks a file can describe: 1 Mi (1 TiB of output at 1 MiB chunks); a
  // pass publishes nothing past them.
  static constexpr uint64_t kCapacity = uint64_t{1} << 20;

  // Opens (creating, mode 0600, if missing) the progress file at `path`.
  // kCorrupt if it exists with another magic or version.
  [[nodiscard]] static Result<std::unique_ptr<SharedPassProgress>> Open(const std::string& path);
  ~SharedPassProgress();
  SharedPassProgress(const SharedPassProgress&) = delete;
  SharedPassProgress& operator=(const SharedPassProgress&) = delete;

  // The lease holder's side. A new pass begins: nothing is published, in
  // chunks of `chunk_size` bytes from now on (a multiple of 1 KiB below
  // 16 GiB, else this pass publishes nothing).
  void Restart(uint64_t chunk_size);
  // Chunk `index` (== the count published so far) was stored, or is all zeros.
  void Publish(uint64_t index, bool zero);
  // The pass failed: nothing it published may be read.
  void Withdraw();

  // The readers' side: what is published now.
  struct Published {
    uint64_t chunk_size = 0;  // 0: nothing published
    uint64_t count = 0;       // chunks [0, count) are published
    bool operator==(const Published&) const = default;
  };
  Published Load() const;
  // Whether published chunk `index` is all zeros (not stored). Read it after
  // Load, and Load again after: if the chunk size changed meanwhile (another
  // pass restarted), the bit meant another chunk.
  bool IsZero(uint64_t index) const;

  // Waking readers at once. Every change of `published` (Restart, Publish,
  // Withdraw) bumps a 32-bit sequence word and wakes the processes blocked on
  // it (a shared futex on the mapped file). A reader takes WakeSequence()
  // BEFORE it looks at what is published, then, if it must wait, calls
  // WaitForChange with that value: it returns as soon as anything was
  // published since, or after `timeout` (a holder of an older build does not
  // bump the word: its readers then wait out the timeout, as they polled).
  uint32_t WakeSequence() const;
  void WaitForChange(uint32_t seen_sequence, std::chrono::microseconds timeout) const;

 private:
  void WakeReaders();
  uint32_t* WakeWord() const;  // the 32-bit sequence at offset 32
  explicit SharedPassProgress(uint8_t* map) : map_(map) {}
  uint64_t* Word(size_t offset) const;

  uint8_t* const map_;      // the whole file, mapped MAP_SHARED
  uint64_t chunk_kib_ = 0;  // the lease holder's chunk size in KiB; 0: not publishing
};

}  // namespace ocifs
