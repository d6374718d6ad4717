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
             {.max_queued = kMaxQueued, .max_running = std::max(1u, background_fetches)}) {}

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
