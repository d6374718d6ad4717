// The two strategies that fetch a blob ahead of any read, in the background.
//
// ProfilePrefetch: what an access profile names (access_profile.h), in its
// order, from construction on (or from a later StartProfile, for a profile
// found after the blob was opened). Only the first profile given is used.
//  - A profile finer than the cache's chunks (a recorded one: 4 KiB units,
//    1 MiB chunks) is fetched piece by piece, in pieces of its unit or
//    kMinPieceBytes if that is larger (ProfilePieces: the pieces
//    alone, coalesced by a RangePlan, kept in the blob's kept-piece file and
//    served from there by Serve), by kGroupThreads kProfilePrefetch tasks
//    while the source takes several runs per request, `piece_threads` after.
//  - Otherwise (or if the kept-piece file cannot be opened) the cache chunks
//    that hold the profile's, adjacent ones coalesced into runs of at most
//    run_chunks, by `threads` tasks.
//
// PrefetchAll: the whole blob in idle time, one run of run_chunks per
// kPrefetchAll task (which waits while a foreground read is in progress), the
// next step paced to `rate` bytes per second when that is set (0: no cap).
//
// Thread safety: safe for concurrent use. The destructors cancel the tasks
// and wait for the running ones.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "cache/access_profile.h"
#include "cache/blob_fetcher.h"
#include "cache/fetch_strategy.h"
#include "cache/profile_pieces.h"
#include "cache/range_plan.h"

namespace ocifs {

class ProfilePrefetch final : public FetchStrategy {
 public:
  // The smallest piece a profile may be fetched and kept in: a recording's
  // unit (AccessRecorder::kDefaultUnit), so a profile fitted to a gzip index
  // fetches its spans' bytes, not the 64 KiB around their edges.
  static constexpr uint32_t kMinPieceBytes = 4u << 10;
  // RangePlanOptions are in pieces of this size; finer pieces scale them, so
  // that a plan's gaps, runs and windows stay as many bytes.
  static constexpr uint32_t kPlanPieceBytes = 64u << 10;
  // Piece workers while their takes are groups of runs (ProfilePieces::kGroupBytes
  // each; measured on a 400 Mbit/s, 20 ms link: 6-8 fill it, 16 put the plan's
  // head behind 15 other MiB); piece_threads once the source asks one range per request.
  static constexpr unsigned kGroupThreads = 8;
  // min_piece: the smallest piece (bytes, at least kMinPieceBytes; FetchPolicy::profile_min_piece).
  ProfilePrefetch(std::shared_ptr<const BlobFetcher> fetcher, unsigned threads, size_t run_chunks,
                  unsigned piece_threads = 0, RangePlanOptions pieces = {}, uint32_t min_piece = kPlanPieceBytes);
  std::string name() const override { return "profile"; }
  bool StartProfile(const AccessProfile& profile) override;
  [[nodiscard]] Result<bool> Serve(const BlobRead& read, std::span<uint8_t> buf) override;
  bool Holds(uint64_t offset, uint64_t length) const override;
  void Wait() override;

 private:
  // The pieces of `profile` for this blob if it is finer than the chunks and
  // piece_threads_ > 0 (null otherwise: fetch chunks).
  std::unique_ptr<ProfilePieces> PlanPieces(const AccessProfile& profile) const;
  void StartWorkers(unsigned threads);
  void Worker();

  const std::shared_ptr<const BlobFetcher> fetcher_;
  const unsigned threads_;
  const size_t run_chunks_;
  const unsigned piece_threads_;
  const RangePlanOptions piece_plan_;
  const uint32_t min_piece_;
  std::atomic<bool> started_{false};
  std::unique_ptr<ProfilePieces> pieces_owner_;     // set once by StartProfile, before pieces_
  std::atomic<ProfilePieces*> pieces_{nullptr};     // published (release) once planned
  std::vector<std::pair<uint64_t, uint64_t>> runs_;  // (first chunk, count), in order; set once by StartProfile
  std::atomic<size_t> next_{0};                       // the next run a worker takes
  std::mutex mu_;
  std::condition_variable done_cv_;
  unsigned running_ = 0;  // guarded by mu_: workers not yet ended
  unsigned workers_ = 0;  // guarded by mu_: workers started
  TaskGroup tasks_;       // last: cancelled and waited for first
};

class PrefetchAll final : public FetchStrategy {
 public:
  PrefetchAll(std::shared_ptr<const BlobFetcher> fetcher, size_t run_chunks, uint64_t rate);
  std::string name() const override { return "prefetch-all"; }
  void Wait() override { tasks_.Wait(); }

 private:
  void Step();

  const std::shared_ptr<const BlobFetcher> fetcher_;
  const size_t run_chunks_;
  const uint64_t rate_;
  std::atomic<uint64_t> next_{0};  // the next chunk a step looks at (one step at a time)
  TaskGroup tasks_;                // last: cancelled and waited for first
};

}  // namespace ocifs
