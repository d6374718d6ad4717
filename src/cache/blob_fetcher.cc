#include "cache/blob_fetcher.h"

#include <algorithm>
#include <vector>

#include <spdlog/spdlog.h>

namespace ocifs {

BlobFetcher::BlobFetcher(ByteSourcePtr inner, std::shared_ptr<ChunkCache> cache, std::string key,
                         std::shared_ptr<Scheduler> scheduler, unsigned background_fetches)
    : inner_(std::move(inner)),
      cache_(std::move(cache)),
      key_(std::move(key)),
      scheduler_(scheduler ? std::move(scheduler) : Scheduler::Shared()),
      size_(inner_->size()),
      chunk_count_((size_ + cache_->chunk_size() - 1) / cache_->chunk_size()),
      tasks_(scheduler_, "fetches of " + key_,
             {.max_queued = kMaxQueued, .max_running = std::max(1u, background_fetches)}),
      stream_task_(scheduler_, "stream of " + key_, {.max_queued = 1, .max_running = 1}) {}

BlobFetcher::OwedToken::OwedToken(std::shared_ptr<OwedCount> c) : count(std::move(c)) {
  std::lock_guard lock(count->mu);
  ++count->owed;
}

BlobFetcher::OwedToken::~OwedToken() {
  std::lock_guard lock(count->mu);
  if (--count->owed == 0) count->cv.notify_all();
}

Result<uint64_t> BlobFetcher::Fetch(uint64_t first, uint64_t count, size_t max_run) const {
  const uint64_t chunk_size = cache_->chunk_size();
  std::vector<size_t> lengths;
  for (uint64_t i = first; i < first + count && i < chunk_count_; ++i) {
    lengths.push_back(static_cast<size_t>(std::min(chunk_size, size_ - i * chunk_size)));
  }
  auto fetch = [&](uint64_t index, std::span<uint8_t> out) { return ReadExactly(*inner_, index * chunk_size, out); };
  return cache_->FetchMissing(key_, first, lengths, max_run, fetch);
}

void BlobFetcher::FinishOwed() const {
  finishing_.store(true);
  std::unique_lock lock(owed_->mu);
  owed_->cv.wait(lock, [this] { return owed_->owed == 0; });
}

bool BlobFetcher::QueueOwed(uint64_t first, uint64_t end, size_t run) const {
  return Post(true, TaskClass::kReadahead, first, end, run);
}

bool BlobFetcher::Post(bool owed, TaskClass cls, uint64_t first, uint64_t end, size_t run) const {
  run = std::max<size_t>(1, run);
  for (uint64_t i = first; i < end; i += run) {
    const uint64_t count = std::min<uint64_t>(run, end - i);
    auto token = owed ? std::make_shared<OwedToken>(owed_) : nullptr;
    const bool queued = tasks_.Post(cls, [this, token, cls, i, count, run] {
      Status st = Fetch(i, count, run).status();
      if (st.ok()) return;
      spdlog::debug("{}: {} fetch of chunk {}: {}", Describe(), TaskClassName(cls), i, st.ToString());
      // Unmounting and the blob fails: the rest would fail too, each after its
      // timeout. Drops the queued fetches (owed or not), whose tokens end with them.
      if (token && finishing_.load()) tasks_.Cancel();
    }) != 0;
    if (!queued) return false;
  }
  return true;
}

bool BlobFetcher::StartStream(uint64_t first, uint64_t limit) const {
  if (first >= chunk_count_) return false;
  {
    std::lock_guard lock(stream_mu_);
    if (streaming_ || stream_failed_) return false;
    streaming_ = true;
    stream_start_ = first * chunk_size();
    stream_limit_ = limit;
  }
  if (stream_task_.Post(TaskClass::kReadahead, [this, first] { StreamTask(first); }) != 0) return true;
  std::lock_guard lock(stream_mu_);
  streaming_ = false;
  return false;
}

bool BlobFetcher::ExtendStream(uint64_t offset, uint64_t limit) const {
  {
    std::lock_guard lock(stream_mu_);
    if (!streaming_ || offset < stream_start_ || offset > stream_limit_) return false;
    if (limit <= stream_limit_) return true;
    stream_limit_ = limit;
  }
  stream_cv_.notify_all();
  return true;
}

bool BlobFetcher::StreamBrings(uint64_t offset) const {
  std::lock_guard lock(stream_mu_);
  return streaming_ && offset >= stream_start_ && offset < stream_limit_ + kStreamClaimBytes;
}

uint64_t BlobFetcher::StreamLimitLocked() const {
  const uint64_t chunk = chunk_size();
  return std::min(size_, (stream_limit_ + chunk - 1) / chunk * chunk);
}

uint64_t BlobFetcher::WaitForStreamLimit(uint64_t at) const {
  std::unique_lock lock(stream_mu_);
  while (at >= StreamLimitLocked()) {
    if (stream_task_.cancelled()) return 0;
    // Wakes to look at cancellation: the group's cancel hooks cannot reach this wait.
    stream_cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
  return stream_task_.cancelled() ? 0 : StreamLimitLocked();
}

void BlobFetcher::StreamTask(uint64_t first) const {
  const uint64_t chunk = chunk_size();
  std::vector<size_t> lengths;
  for (uint64_t i = first; i < chunk_count_; ++i) lengths.push_back(static_cast<size_t>(std::min(chunk, size_ - i * chunk)));
  const size_t claim_ahead = std::max<size_t>(2, kStreamClaimBytes / chunk);
  auto stream = [&](uint64_t first_index, uint64_t bytes, const ChunkCache::StreamConsumer& consume) {
    const uint64_t base = first_index * chunk;
    return inner_->ReadStream(base, bytes, [&](uint64_t at, std::span<const uint8_t> piece) {
      // No byte at or past the limit is handed on before the limit is raised.
      while (!piece.empty()) {
        const uint64_t limit = WaitForStreamLimit(base + at);
        if (limit == 0) return false;
        const auto n = static_cast<size_t>(std::min<uint64_t>(piece.size(), limit - (base + at)));
        if (!consume(at, piece.first(n))) return false;
        at += n;
        piece = piece.subspan(n);
      }
      return true;
    });
  };
  // The chunks below the limit: whole ones (StreamLimitLocked), so no claimed chunk waits for a hint.
  auto claimable = [&] {
    std::lock_guard lock(stream_mu_);
    return (StreamLimitLocked() + chunk - 1) / chunk;
  };
  Result<uint64_t> stored = cache_->StreamChunks(key_, first, lengths, claim_ahead, stream, claimable);
  std::lock_guard lock(stream_mu_);
  streaming_ = false;
  if (stored.ok()) {
    spdlog::debug("{}: stream from chunk {} stored {} chunks", Describe(), first, *stored);
  } else if (!stream_task_.cancelled()) {
    stream_failed_ = true;
    spdlog::info("{}: stream from chunk {} ended: {}; reading ahead in ranges from here", Describe(), first,
                 stored.status().ToString());
  }
}

bool BlobFetcher::AllMissing(uint64_t first, uint64_t last) const {
  for (uint64_t index = first; index <= last; ++index) {
    if (cache_->StoredOrInFlight(key_, index)) return false;
  }
  return true;
}

Status BlobFetcher::ReadAround(uint64_t offset, std::span<uint8_t> buf) const {
  OCIFS_RETURN_IF_ERROR(ReadExactly(*inner_, offset, buf));
  cache_->CountBypassedMiss(buf.size());
  return Status::Ok();
}

}  // namespace ocifs
