#include "cache/cached_source.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

#include "cache/cache_key.h"

namespace ocifs {
namespace {

constexpr size_t kMaxPendingJobs = 64;

}  // namespace

CachedSource::CachedSource(ByteSourcePtr inner, std::shared_ptr<ChunkCache> cache, std::string key,
                           CachedSourceOptions options)
    : inner_(std::move(inner)),
      cache_(std::move(cache)),
      key_(std::move(key)),
      key_status_(ValidateCacheKey(key_)),
      options_(options),
      group_chunks_(std::max<uint64_t>(1, options.miss_group_bytes / cache_->chunk_size())),
      readahead_(options.readahead),
      fetches_(options.scheduler, "fetches of " + key_,
               {.max_queued = kMaxPendingJobs, .max_running = std::max(1u, options.prefetch_threads)}),
      profile_tasks_(options.scheduler, "profile of " + key_) {
  if (options_.prefetch_all && options_.prefetch_threads > 0 && key_status_.ok() && inner_->size() != kUnknownSize &&
      inner_->size() > 0) {
    fetches_.Post(TaskClass::kPrefetchAll, [this] { PrefetchAllStep(); });
  }
  if (options_.profile) StartProfile(*options_.profile);
}

CachedSource::~CachedSource() = default;

bool CachedSource::StartProfile(const AccessProfile& profile) const {
  if (!key_status_.ok() || inner_->size() == kUnknownSize) return false;
  const uint64_t chunk_count = (inner_->size() + cache_->chunk_size() - 1) / cache_->chunk_size();
  uint64_t skipped = 0;
  const std::vector<uint64_t> chunks = profile.ChunksOf(key_, cache_->chunk_size(), chunk_count, &skipped);
  if (chunks.empty()) return false;
  if (profile_started_.exchange(true)) return false;
  if (skipped) spdlog::warn("{}: the profile names {} chunks past the blob's end; skipped", Describe(), skipped);
  const uint64_t max_run = std::max<size_t>(1, options_.profile_run_chunks);
  for (uint64_t index : chunks) {
    auto& runs = profile_runs_;
    if (!runs.empty() && runs.back().first + runs.back().second == index && runs.back().second < max_run) {
      ++runs.back().second;
    } else {
      runs.emplace_back(index, 1);
    }
  }
  if (profile_runs_.empty()) return false;
  spdlog::info("{}: prefetching the profile's {} chunks in {} runs", Describe(), chunks.size(), profile_runs_.size());
  const unsigned threads = std::max(1u, options_.profile_threads);
  {
    std::lock_guard lock(profile_mu_);
    profile_running_ = threads;
  }
  for (unsigned i = 0; i < threads; ++i) {
    if (profile_tasks_.Post(TaskClass::kProfilePrefetch, [this] { ProfileWorker(); }) == 0) {
      std::lock_guard lock(profile_mu_);  // refused (stopping): this worker never runs
      if (--profile_running_ == 0) profile_cv_.notify_all();
    }
  }
  return true;
}

void CachedSource::ProfileWorker() const {
  const auto start = std::chrono::steady_clock::now();
  const size_t max_run = std::max<size_t>(1, options_.profile_run_chunks);
  while (!profile_tasks_.cancelled()) {
    const size_t i = profile_next_.fetch_add(1);
    if (i >= profile_runs_.size()) break;
    Status st = FetchChunks(profile_runs_[i].first, profile_runs_[i].second, max_run).status();
    if (!st.ok()) {
      spdlog::warn("{}: profile prefetch of chunk {}: {}", Describe(), profile_runs_[i].first, st.ToString());
    }
  }
  std::lock_guard lock(profile_mu_);
  if (--profile_running_ == 0) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("{}: profile prefetch done in {:.2f} s", Describe(), seconds);
    profile_cv_.notify_all();
  }
}

void CachedSource::WaitForProfile() const {
  std::unique_lock lock(profile_mu_);
  profile_cv_.wait(lock, [this] { return profile_running_ == 0; });
}

std::unique_ptr<uint8_t[]> CachedSource::TakeScratch() const {
  {
    std::lock_guard lock(scratch_mu_);
    if (!scratch_.empty()) {
      auto buf = std::move(scratch_.back());
      scratch_.pop_back();
      return buf;
    }
  }
  return std::make_unique_for_overwrite<uint8_t[]>(cache_->chunk_size());
}

void CachedSource::ReturnScratch(std::unique_ptr<uint8_t[]> buf) const {
  std::lock_guard lock(scratch_mu_);
  if (scratch_.size() < kMaxPooled) scratch_.push_back(std::move(buf));
}

Result<uint64_t> CachedSource::FetchChunks(uint64_t first, uint64_t count, size_t max_run) const {
  const uint64_t size = inner_->size();
  const uint64_t chunk_size = cache_->chunk_size();
  std::vector<size_t> lengths;
  for (uint64_t i = first; i < first + count && i * chunk_size < size; ++i) {
    lengths.push_back(static_cast<size_t>(std::min(chunk_size, size - i * chunk_size)));
  }
  auto fetch = [&](uint64_t index, std::span<uint8_t> out) { return ReadExactly(*inner_, index * chunk_size, out); };
  return cache_->FetchMissing(key_, first, lengths, max_run, fetch);
}

bool CachedSource::QueueChunks(uint64_t first, uint64_t end) const {
  const uint64_t run = std::max<size_t>(1, options_.max_run_chunks);
  for (uint64_t i = first; i < end; i += run) {
    const uint64_t count = std::min(run, end - i);
    if (options_.prefetch_threads == 0) return false;
    const bool queued = fetches_.Post(TaskClass::kReadahead, [this, i, count] {
      Status st = FetchChunks(i, count, options_.max_run_chunks).status();
      if (!st.ok()) spdlog::debug("{}: read-ahead of chunk {}: {}", Describe(), i, st.ToString());
    }) != 0;
    if (!queued) return false;
  }
  return true;
}

void CachedSource::Prefetch(uint64_t offset, uint64_t length) const {
  const uint64_t size = inner_->size();
  if (!key_status_.ok() || size == kUnknownSize || offset >= size || length == 0) return;
  const uint64_t end = offset + std::min({length, size - offset, kMaxPrefetchBytes});
  const uint64_t chunk_size = cache_->chunk_size();
  QueueChunks(offset / chunk_size, (end + chunk_size - 1) / chunk_size);
}

void CachedSource::PrefetchAllStep() const {
  const uint64_t chunk_size = cache_->chunk_size();
  const uint64_t chunks = (inner_->size() + chunk_size - 1) / chunk_size;
  uint64_t next = prefetch_all_next_.load();
  if (next >= chunks) return;
  const uint64_t count = std::min<uint64_t>(std::max<size_t>(1, options_.prefetch_all_run_chunks), chunks - next);
  prefetch_all_next_.store(next + count);
  Result<uint64_t> fetched = FetchChunks(next, count, options_.prefetch_all_run_chunks);
  if (!fetched.ok()) {
    spdlog::warn("{}: background fetch of the whole blob stopped at chunk {}: {}", Describe(), next,
                 fetched.status().ToString());
    return;
  }
  if (next + count >= chunks) return;
  Scheduler::Clock::time_point not_before{};
  if (options_.prefetch_all_rate > 0 && *fetched > 0) {
    // Pace to the cap: the next step waits as long as these bytes take at that rate.
    const double seconds = static_cast<double>(*fetched * chunk_size) / static_cast<double>(options_.prefetch_all_rate);
    not_before = Scheduler::Clock::now() + std::chrono::duration_cast<Scheduler::Clock::duration>(
                                               std::chrono::duration<double>(seconds));
  }
  fetches_.Post(TaskClass::kPrefetchAll, [this] { PrefetchAllStep(); }, not_before);
}

bool CachedSource::AllMissing(uint64_t first, uint64_t last) const {
  for (uint64_t index = first; index <= last; ++index) {
    if (cache_->StoredOrInFlight(key_, index)) return false;
  }
  return true;
}

std::pair<uint64_t, uint64_t> CachedSource::MissGroup(uint64_t first, uint64_t last) const {
  const uint64_t chunks = (inner_->size() + cache_->chunk_size() - 1) / cache_->chunk_size();
  return {first - first % group_chunks_, std::min(chunks, (last / group_chunks_ + 1) * group_chunks_)};
}

Result<bool> CachedSource::ReadSmallMiss(uint64_t offset, std::span<uint8_t> buf, uint64_t first,
                                         uint64_t last) const {
  // Small next to what a miss brings (its chunk, or its group).
  if (buf.size() > group_chunks_ * cache_->chunk_size() / 4) return false;
  // The whole chunks (with their miss group: one range, as one large chunk)
  // first, so their transfer starts beside this read's; with the queue full,
  // the read takes the whole-chunk path so they still get cached.
  if (group_chunks_ > 1) {
    auto [group_first, group_end] = MissGroup(first, last);
    const bool queued = fetches_.Post(TaskClass::kReadahead, [this, group_first, group_end] {
      Status st = FetchChunks(group_first, group_end - group_first, group_end - group_first).status();
      if (!st.ok()) spdlog::debug("{}: fetch of chunk group {}: {}", Describe(), group_first, st.ToString());
    }) != 0;
    if (!queued) return false;
  } else if (!QueueChunks(first, last + 1)) {
    return false;
  }
  Status st = ReadExactly(*inner_, offset, buf);
  if (!st.ok()) return st.WithContext("cached " + Describe() + " bytes " + std::to_string(offset) + ".." +
                                      std::to_string(offset + buf.size()));
  cache_->CountBypassedMiss(buf.size());
  return true;
}

Result<size_t> CachedSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (!key_status_.ok()) return key_status_.WithContext(Describe());
  const uint64_t size = inner_->size();
  if (size == kUnknownSize) return inner_->ReadAt(offset, buf);
  if (offset >= size || buf.empty()) return size_t{0};
  Scheduler::Foreground foreground(fetches_.scheduler());
  const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - offset));
  const uint64_t chunk_size = cache_->chunk_size();
  // Read-ahead first, so its fetches run beside this read's own.
  if (options_.prefetch_threads > 0) {
    if (auto ahead = readahead_.OnRead(offset, want, size)) {
      QueueChunks(ahead->offset / chunk_size, (ahead->offset + ahead->length + chunk_size - 1) / chunk_size);
    }
  }
  const uint64_t first = offset / chunk_size;
  const uint64_t last = (offset + want - 1) / chunk_size;
  if (options_.recorder) options_.recorder->Touch(key_, offset, want);
  const size_t count = static_cast<size_t>(last - first + 1);
  auto chunk_len = [&](uint64_t index) {
    return static_cast<size_t>(std::min(chunk_size, size - index * chunk_size));
  };
  // Chunks this process has checked before: just the bytes asked for, no
  // chunk-sized copy or CRC (falls through to the whole-chunk path on any miss).
  {
    bool all = true;
    for (uint64_t index = first; index <= last && all; ++index) {
      const uint64_t start = std::max(offset, index * chunk_size);
      const uint64_t end = std::min(offset + want, (index + 1) * chunk_size);
      all = cache_->ReadPart(key_, index, chunk_len(index), static_cast<size_t>(start - index * chunk_size),
                             buf.subspan(static_cast<size_t>(start - offset), static_cast<size_t>(end - start)));
    }
    if (all) return want;
  }
  // A read none of whose chunks is on disk or in flight: a small one fetches
  // just its bytes while its chunks come in the background; with a miss
  // group, a larger one fetches its group with one range (as a chunk of the
  // group's size would be fetched) and then reads its chunks from disk.
  if ((group_chunks_ > 1 || (options_.exact_small_misses && options_.prefetch_threads > 0)) &&
      AllMissing(first, last)) {
    if (options_.exact_small_misses && options_.prefetch_threads > 0) {
      OCIFS_ASSIGN_OR_RETURN(bool served, ReadSmallMiss(offset, buf.first(want), first, last));
      if (served) return want;
    }
    if (group_chunks_ > 1) {
      auto [group_first, group_end] = MissGroup(first, last);
      Status st = FetchChunks(group_first, group_end - group_first, group_end - group_first).status();
      if (!st.ok()) return st.WithContext("cached " + Describe() + " chunks " + std::to_string(group_first) + ".." +
                                          std::to_string(group_end - 1));
    }
  }
  // Whole chunks go straight into buf; the partly covered first and last through scratch.
  std::unique_ptr<uint8_t[]> head, tail;
  std::vector<std::span<uint8_t>> outs(count);
  for (size_t i = 0; i < count; ++i) {
    const uint64_t index = first + i;
    const uint64_t start = index * chunk_size;
    const size_t len = chunk_len(index);
    if (start >= offset && start + len <= offset + want) {
      outs[i] = buf.subspan(static_cast<size_t>(start - offset), len);
    } else if (i == 0) {
      head = TakeScratch();
      outs[i] = std::span<uint8_t>(head.get(), len);
    } else {
      tail = TakeScratch();
      outs[i] = std::span<uint8_t>(tail.get(), len);
    }
  }
  auto fetch = [&](uint64_t index, std::span<uint8_t> out) { return ReadExactly(*inner_, index * chunk_size, out); };
  Status st = cache_->ReadChunks(key_, first, outs, fetch, &fetches_.scheduler().decode_pool());
  if (st.ok()) {
    if (head) {
      const size_t in_chunk = static_cast<size_t>(offset - first * chunk_size);
      const size_t n = std::min(outs[0].size() - in_chunk, want);
      std::memcpy(buf.data(), head.get() + in_chunk, n);
    }
    if (tail) {
      const uint64_t start = last * chunk_size;
      std::memcpy(buf.data() + (start - offset), tail.get(), static_cast<size_t>(offset + want - start));
    }
  }
  if (head) ReturnScratch(std::move(head));
  if (tail) ReturnScratch(std::move(tail));
  if (!st.ok()) {
    return st.WithContext("cached " + Describe() + (first == last ? " chunk " + std::to_string(first)
                                                                   : " chunks " + std::to_string(first) + ".." +
                                                                         std::to_string(last)));
  }
  return want;
}

}  // namespace ocifs
