// ProfilePieces: a profile's prefetch at the grain of the profile itself.
// A profile names the 64 KiB pieces of a blob a workload read
// (docs/profile-format.md); fetching the cache's 1 MiB chunks around them
// fetched about four times the bytes a boot needs. This fetches the pieces
// alone, in the runs a RangePlan makes of them (few requests, the profile's
// order), and keeps them in the blob's kept-piece file (KeptPieceFile under
// the key "<blob key>:profile-pieces", docs/cache-format.md "Kept pieces"),
// where the cache stage's reads find them (Serve) before they fetch chunks.
//
// Requests: a worker takes the next runs of the plan up to kGroupBytes (at
// most kGroupRuns) and asks them in one multi-range request
// (ByteSource::ReadRanges), keeping each piece as its bytes arrive and
// marking each run done when its last piece is kept: a few large requests
// cost a registry far less than many small ones (docker-registry: ~5 ms of
// CPU per request). A source that reads one range per request (the registry
// answered the whole blob, or one range) makes every later take one run.
//
// Single flight: each run is fetched once, by a prefetch worker (FetchNext)
// or by a reader that needs it before a worker took it (Serve claims it and
// fetches it on its own thread); readers of a run in flight wait for it. A
// run whose fetch failed is not retried here: its readers take the chunk
// path, which fetches (and reports errors) as without a profile.
//
// Thread safety: safe for concurrent use; mu_ guards the runs' states and is
// never held during I/O (it is taken before the store's own lock). Ownership: shares the fetcher and the store.
// Units: piece indexes of piece_size bytes; blob bytes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "cache/blob_fetcher.h"
#include "cache/kept_piece_file.h"
#include "cache/range_plan.h"

namespace ocifs {

class ProfilePieces {
 public:
  // Plans `pieces` (first read first) less those `store` holds already and
  // those whose cache chunk is stored or in flight (the chunk path reads them).
  // store->chunk_size() is the piece size; it must be below the cache's chunk size.
  ProfilePieces(std::shared_ptr<const BlobFetcher> fetcher, std::shared_ptr<KeptPieceFile> store,
                std::span<const uint64_t> pieces, const RangePlanOptions& options);
  ProfilePieces(const ProfilePieces&) = delete;
  ProfilePieces& operator=(const ProfilePieces&) = delete;

  size_t run_count() const { return runs_.size(); }
  uint64_t planned_bytes() const { return planned_bytes_; }
  // Fetches and keeps the next run in the plan's order that no one has
  // taken; false when none is left. Called by the prefetch workers.
  bool FetchNext();
  // Serves bytes [offset, offset + buf.size()) of the blob if every piece
  // they touch is kept or planned (waiting for, or fetching, its run): true
  // and buf filled. False if some piece is neither, a run failed, or a kept
  // piece did not read back (the caller then reads through the chunks).
  [[nodiscard]] Result<bool> Serve(uint64_t offset, std::span<uint8_t> buf);

  // Whether every piece of [offset, offset + length) is planned (fetched,
  // in flight or to come) or kept. Does not wait.
  bool Holds(uint64_t offset, uint64_t length) const;

  struct Stats {
    uint64_t requests = 0;       // range requests made (one per run, or per group of runs)
    uint64_t runs_fetched = 0;   // runs this object fetched (workers and readers)
    uint64_t runs_by_readers = 0;  // of those, runs a reader needed before a worker took them
    uint64_t bytes_fetched = 0;  // their bytes
    uint64_t reads_served = 0;   // Serve calls that returned true
  };
  Stats stats() const;

  // A worker's take: runs of at most this many bytes together, at most kGroupRuns.
  static constexpr uint64_t kGroupBytes = 1u << 20;
  static constexpr size_t kGroupRuns = 32;
  // Whether takes are groups still (false once the source read one range per request).
  bool together() const { return together_.load(std::memory_order_relaxed); }

 private:
  enum class State : uint8_t { kPending, kFlying, kDone, kFailed };
  // The run holding `piece`, if one does.
  std::optional<size_t> RunOf(uint64_t piece) const;
  // Fetches run `i` (claimed: kFlying), keeps its pieces, marks it done or failed.
  void FetchRun(size_t i, bool by_reader);
  // Fetches the claimed runs `group` in one request, keeping pieces as they
  // come; the runs the request did not bring are fetched one by one (the
  // source does not do multi-range requests) or marked failed.
  void FetchGroup(std::vector<size_t> group);
  // Marks run `i` (kFlying) done or failed and wakes its readers.
  void EndRun(size_t i, bool ok);
  // Blob bytes of run `i`.
  uint64_t RunBytes(size_t i) const;

  const std::shared_ptr<const BlobFetcher> fetcher_;
  const std::shared_ptr<KeptPieceFile> store_;
  const uint64_t piece_size_;
  std::vector<PieceRun> runs_;                  // const after construction
  std::vector<uint32_t> by_first_;              // run indexes by first piece; const after construction
  uint64_t planned_bytes_ = 0;                  // const after construction
  std::atomic<bool> together_{true};            // whether FetchNext takes several runs at once

  mutable std::mutex mu_;
  std::condition_variable cv_;   // a run left kFlying
  std::vector<State> state_;     // guarded by mu_; one per run
  size_t next_ = 0;              // guarded by mu_: the next run FetchNext looks at

  std::atomic<uint64_t> requests_{0}, runs_fetched_{0}, runs_by_readers_{0}, bytes_fetched_{0}, reads_served_{0};
};

}  // namespace ocifs
