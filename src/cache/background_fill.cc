#include "cache/background_fill.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "cache/cache_key.h"

namespace ocifs {

ProfilePrefetch::ProfilePrefetch(std::shared_ptr<const BlobFetcher> fetcher, unsigned threads, size_t run_chunks,
                                 unsigned piece_threads, RangePlanOptions pieces, uint32_t min_piece)
    : fetcher_(std::move(fetcher)),
      threads_(std::max(1u, threads)),
      run_chunks_(std::max<size_t>(1, run_chunks)),
      piece_threads_(piece_threads),
      piece_plan_(pieces),
      min_piece_(std::max(min_piece, kMinPieceBytes)),
      tasks_(fetcher_->scheduler(), "profile of " + fetcher_->key()) {}

std::unique_ptr<ProfilePieces> ProfilePrefetch::PlanPieces(const AccessProfile& profile) const {
  // A profile of finer units (a recording's 4 KiB) is fetched in pieces of min_piece_ at least.
  const uint32_t piece_size = std::max(profile.chunk_size, min_piece_);
  if (piece_threads_ == 0 || piece_size >= fetcher_->chunk_size() || !KeptPieceFile::ValidPieceSize(piece_size)) {
    return nullptr;
  }
  const uint64_t piece_count = (fetcher_->size() + piece_size - 1) / piece_size;
  uint64_t skipped = 0;
  const std::vector<uint64_t> units = profile.ChunksOf(fetcher_->key(), piece_size, piece_count, &skipped);
  if (units.empty()) return nullptr;
  if (skipped) spdlog::warn("{}: the profile names {} chunks past the blob's end; skipped", fetcher_->Describe(), skipped);
  auto store = KeptPieceFile::Open(fetcher_->cache(), DerivedCacheKey(fetcher_->key(), "profile-pieces"), piece_size);
  if (!store.ok()) {
    spdlog::warn("{}: fetching the profile's whole chunks: {}", fetcher_->Describe(), store.status().ToString());
    return nullptr;
  }
  RangePlanOptions plan = piece_plan_;
  if (piece_size < kPlanPieceBytes) {
    const uint64_t scale = kPlanPieceBytes / piece_size;
    plan.gap *= scale;
    plan.max_run *= scale;
    plan.window *= scale;
  }
  return std::make_unique<ProfilePieces>(fetcher_, std::move(*store), units, plan);
}

bool ProfilePrefetch::StartProfile(const AccessProfile& profile) {
  if (started_.load()) return false;
  if (auto pieces = PlanPieces(profile)) {
    if (started_.exchange(true)) return false;
    spdlog::info("{}: prefetching the profile's {} pieces ({:.1f} MiB) in {} runs", fetcher_->Describe(),
                 profile.ChunksOf(fetcher_->key()).size(), pieces->planned_bytes() / 1048576.0, pieces->run_count());
    pieces_owner_ = std::move(pieces);
    pieces_.store(pieces_owner_.get(), std::memory_order_release);
    // Groups of runs (one request each) fill the link with fewer requests in
    // flight; one run per request wants all piece_threads_ (Worker adds them).
    StartWorkers(std::min(piece_threads_, kGroupThreads));
    return true;
  }
  uint64_t skipped = 0;
  const std::vector<uint64_t> chunks =
      profile.ChunksOf(fetcher_->key(), fetcher_->chunk_size(), fetcher_->chunk_count(), &skipped);
  if (chunks.empty()) return false;
  if (started_.exchange(true)) return false;
  if (skipped) spdlog::warn("{}: the profile names {} chunks past the blob's end; skipped", fetcher_->Describe(), skipped);
  for (uint64_t index : chunks) {
    if (!runs_.empty() && runs_.back().first + runs_.back().second == index && runs_.back().second < run_chunks_) {
      ++runs_.back().second;
    } else {
      runs_.emplace_back(index, 1);
    }
  }
  spdlog::info("{}: prefetching the profile's {} chunks in {} runs", fetcher_->Describe(), chunks.size(), runs_.size());
  StartWorkers(threads_);
  return true;
}

void ProfilePrefetch::StartWorkers(unsigned threads) {
  {
    std::lock_guard lock(mu_);
    running_ += threads;
    workers_ += threads;
  }
  for (unsigned i = 0; i < threads; ++i) {
    if (tasks_.Post(TaskClass::kProfilePrefetch, [this] { Worker(); }) == 0) {
      std::lock_guard lock(mu_);  // refused (stopping): this worker never runs
      if (--running_ == 0) done_cv_.notify_all();
    }
  }
}

bool ProfilePrefetch::Holds(uint64_t offset, uint64_t length) const {
  const ProfilePieces* pieces = pieces_.load(std::memory_order_acquire);
  return pieces != nullptr && pieces->Holds(offset, length);
}

Result<bool> ProfilePrefetch::Serve(const BlobRead& read, std::span<uint8_t> buf) {
  ProfilePieces* pieces = pieces_.load(std::memory_order_acquire);
  if (pieces == nullptr) return false;
  return pieces->Serve(read.offset, buf.first(read.length));
}

void ProfilePrefetch::Worker() {
  const auto start = std::chrono::steady_clock::now();
  ProfilePieces* pieces = pieces_.load(std::memory_order_acquire);
  while (pieces && !tasks_.cancelled() && pieces->FetchNext()) {
    if (!pieces->together()) {
      unsigned more = 0;
      {
        std::lock_guard lock(mu_);
        if (workers_ < piece_threads_) more = piece_threads_ - workers_;
      }
      if (more > 0) StartWorkers(more);
    }
  }
  while (!pieces && !tasks_.cancelled()) {
    const size_t i = next_.fetch_add(1);
    if (i >= runs_.size()) break;
    Status st = fetcher_->Fetch(runs_[i].first, runs_[i].second, run_chunks_).status();
    if (!st.ok()) spdlog::warn("{}: profile prefetch of chunk {}: {}", fetcher_->Describe(), runs_[i].first, st.ToString());
  }
  std::lock_guard lock(mu_);
  if (--running_ == 0) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (pieces) {
      const ProfilePieces::Stats s = pieces->stats();
      spdlog::info("{}: profile prefetch done in {:.2f} s: {:.1f} MiB, {} runs in {} requests ({} runs by readers first)",
                   fetcher_->Describe(), seconds, s.bytes_fetched / 1048576.0, s.runs_fetched, s.requests,
                   s.runs_by_readers);
    } else {
      spdlog::info("{}: profile prefetch done in {:.2f} s", fetcher_->Describe(), seconds);
    }
    done_cv_.notify_all();
  }
}

void ProfilePrefetch::Wait() {
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [this] { return running_ == 0; });
}

PrefetchAll::PrefetchAll(std::shared_ptr<const BlobFetcher> fetcher, size_t run_chunks, uint64_t rate)
    : fetcher_(std::move(fetcher)),
      run_chunks_(std::max<size_t>(1, run_chunks)),
      rate_(rate),
      tasks_(fetcher_->scheduler(), "prefetch-all of " + fetcher_->key()) {
  if (fetcher_->chunk_count() > 0) tasks_.Post(TaskClass::kPrefetchAll, [this] { Step(); });
}

void PrefetchAll::Step() {
  const uint64_t chunks = fetcher_->chunk_count();
  const uint64_t next = next_.load();
  if (next >= chunks) return;
  const uint64_t count = std::min<uint64_t>(run_chunks_, chunks - next);
  next_.store(next + count);
  Result<uint64_t> fetched = fetcher_->Fetch(next, count, run_chunks_);
  if (!fetched.ok()) {
    spdlog::warn("{}: background fetch of the whole blob stopped at chunk {}: {}", fetcher_->Describe(), next,
                 fetched.status().ToString());
    return;
  }
  if (next + count >= chunks) return;
  Scheduler::Clock::time_point not_before{};
  if (rate_ > 0 && *fetched > 0) {
    // Pace to the cap: the next step waits as long as these bytes take at that rate.
    const double seconds = static_cast<double>(*fetched * fetcher_->chunk_size()) / static_cast<double>(rate_);
    not_before = Scheduler::Clock::now() +
                 std::chrono::duration_cast<Scheduler::Clock::duration>(std::chrono::duration<double>(seconds));
  }
  tasks_.Post(TaskClass::kPrefetchAll, [this] { Step(); }, not_before);
}

}  // namespace ocifs
