#include "cache/cached_source.h"

#include <algorithm>
#include <cstring>

#include "cache/cache_key.h"

namespace ocifs {
namespace {

std::shared_ptr<BlobFetcher> MakeFetcher(const ByteSourcePtr& inner, const std::shared_ptr<ChunkCache>& cache,
                                         const std::string& key, const Status& key_status, const FetchPolicy& p) {
  if (!key_status.ok() || inner->size() == ByteSource::kUnknownSize) return nullptr;
  return std::make_shared<BlobFetcher>(inner, cache, key, p.scheduler, p.prefetch_threads);
}

}  // namespace

CachedSource::CachedSource(ByteSourcePtr inner, std::shared_ptr<ChunkCache> cache, std::string key,
                           FetchPolicy policy)
    : inner_(std::move(inner)),
      cache_(std::move(cache)),
      key_(std::move(key)),
      key_status_(ValidateCacheKey(key_)),
      background_(policy.prefetch_threads > 0),
      prefetch_run_chunks_(policy.max_run_chunks),
      stream_passes_(policy.stream_passes),
      fetcher_(MakeFetcher(inner_, cache_, key_, key_status_, policy)),
      strategies_(fetcher_ ? MakeFetchStrategies(policy, fetcher_) : std::vector<std::unique_ptr<FetchStrategy>>{}),
      wants_misses_(std::any_of(strategies_.begin(), strategies_.end(),
                                [](const auto& s) { return s->WantsMisses(); })) {}

CachedSource::~CachedSource() = default;

bool CachedSource::StartProfile(const AccessProfile& profile) {
  for (const auto& s : strategies_) {
    if (s->StartProfile(profile)) return true;
  }
  return false;
}

std::vector<std::string> CachedSource::StrategyNames() const {
  std::vector<std::string> names;
  for (const auto& s : strategies_) names.push_back(s->name());
  return names;
}

void CachedSource::WaitForPrefetches() const {
  if (!fetcher_) return;
  for (const auto& s : strategies_) {
    if (s->name() == "prefetch-all") s->Wait();
  }
  fetcher_->Wait();
}

void CachedSource::WaitForProfile() const {
  for (const auto& s : strategies_) {
    if (s->name() == "profile") s->Wait();
  }
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

void CachedSource::Prefetch(uint64_t offset, uint64_t length) const {
  if (!fetcher_ || !background_) return;
  const uint64_t size = fetcher_->size();
  if (offset >= size || length == 0) return;
  const uint64_t end = offset + std::min({length, size - offset, kMaxPrefetchBytes});
  const uint64_t chunk_size = cache_->chunk_size();
  // The chunks whose hinted bytes a strategy holds already (a profile's pieces) are left out.
  auto held = [&](uint64_t index) {
    const uint64_t from = std::max(offset, index * chunk_size);
    const uint64_t to = std::min(end, (index + 1) * chunk_size);
    return std::any_of(strategies_.begin(), strategies_.end(), [&](const auto& s) { return s->Holds(from, to - from); });
  };
  uint64_t index = offset / chunk_size;
  const uint64_t stop = (end + chunk_size - 1) / chunk_size;
  // A long hint is a stream's (a first pass's read-ahead): half of it per request, up to
  // kMaxStreamRunBytes, so fewer round trips leave the link idle between requests.
  const size_t run = std::max<size_t>(
      prefetch_run_chunks_, static_cast<size_t>(std::min((end - offset) / 2, kMaxStreamRunBytes) / chunk_size));
  // A stream's requests differ in length (3/4, 1, 5/4 of `run`, in turn): equal ones that
  // share the link finish together, and then it idles a round trip before their successors'
  // first bytes (7% of a 400 Mbit/s, 20 ms first pass, docs/benchmarks.md).
  const bool stream = run > prefetch_run_chunks_ && run >= 4;
  if (stream_passes_) {
    bool any_held = false;
    for (uint64_t i = index; i < stop && !any_held; ++i) any_held = held(i);
    // A hint that continues a running stream's (a pass's last, short one up to the end
    // too) paces it; a long one starts it.
    if (!any_held && (fetcher_->ExtendStream(offset, end) || (stream && fetcher_->StartStream(index, end)))) return;
  }
  while (index < stop) {
    while (index < stop && held(index)) ++index;
    uint64_t run_end = index;
    while (run_end < stop && !held(run_end)) ++run_end;
    while (run_end > index) {
      size_t this_run = run;
      if (stream) this_run = run * (3 + stream_requests_.fetch_add(1, std::memory_order_relaxed) % 3) / 4;
      const uint64_t to = std::min<uint64_t>(run_end, index + this_run);
      fetcher_->Queue(TaskClass::kReadahead, index, to, this_run);
      index = to;
    }
  }
}

Result<bool> CachedSource::ServeMiss(const BlobRead& read, std::span<uint8_t> buf) const {
  if (!wants_misses_ || !fetcher_->AllMissing(read.first, read.last)) return false;
  for (const auto& s : strategies_) {
    if (!s->WantsMisses()) continue;
    OCIFS_ASSIGN_OR_RETURN(bool served, s->OnMiss(read, buf));
    if (served) return true;
  }
  return false;
}

Result<size_t> CachedSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (!key_status_.ok()) return key_status_.WithContext(Describe());
  if (!fetcher_) return inner_->ReadAt(offset, buf);
  const uint64_t size = fetcher_->size();
  if (offset >= size || buf.empty()) return size_t{0};
  Scheduler::Foreground foreground(*fetcher_->scheduler());
  const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - offset));
  const uint64_t chunk_size = cache_->chunk_size();
  BlobRead read{offset, want, offset / chunk_size, (offset + want - 1) / chunk_size};
  auto chunk_len = [&](uint64_t index) { return static_cast<size_t>(std::min(chunk_size, size - index * chunk_size)); };
  // Chunks this process has checked before: just the bytes asked for, no
  // chunk-sized copy or CRC (falls through to the whole-chunk path on any miss).
  bool all = true;
  for (uint64_t index = read.first; index <= read.last && all; ++index) {
    const uint64_t start = std::max(offset, index * chunk_size);
    const uint64_t end = std::min(offset + want, (index + 1) * chunk_size);
    all = cache_->ReadPart(key_, index, chunk_len(index), static_cast<size_t>(start - index * chunk_size),
                           buf.subspan(static_cast<size_t>(start - offset), static_cast<size_t>(end - start)));
  }
  // Bytes a strategy keeps apart from the chunks (a profile's pieces).
  for (size_t i = 0; i < strategies_.size() && !all && !read.served; ++i) {
    OCIFS_ASSIGN_OR_RETURN(read.served, strategies_[i]->Serve(read, buf.first(want)));
  }
  // Read-ahead (and the recorder) before this read's own fetches, so they run beside them.
  for (const auto& s : strategies_) s->OnRead(read);
  if (all || read.served) return want;
  OCIFS_ASSIGN_OR_RETURN(bool served, ServeMiss(read, buf));
  if (served) return want;
  OCIFS_RETURN_IF_ERROR(ReadWholeChunks(read, buf));
  return want;
}

Status CachedSource::ReadWholeChunks(const BlobRead& read, std::span<uint8_t> buf) const {
  const uint64_t chunk_size = cache_->chunk_size();
  const uint64_t size = fetcher_->size();
  const size_t count = static_cast<size_t>(read.last - read.first + 1);
  // Whole chunks go straight into buf; the partly covered first and last through scratch.
  std::unique_ptr<uint8_t[]> head, tail;
  std::vector<std::span<uint8_t>> outs(count);
  for (size_t i = 0; i < count; ++i) {
    const uint64_t index = read.first + i;
    const uint64_t start = index * chunk_size;
    const size_t len = static_cast<size_t>(std::min(chunk_size, size - start));
    if (start >= read.offset && start + len <= read.offset + read.length) {
      outs[i] = buf.subspan(static_cast<size_t>(start - read.offset), len);
    } else if (i == 0) {
      head = TakeScratch();
      outs[i] = std::span<uint8_t>(head.get(), len);
    } else {
      tail = TakeScratch();
      outs[i] = std::span<uint8_t>(tail.get(), len);
    }
  }
  auto fetch = [&](uint64_t index, std::span<uint8_t> out) { return ReadExactly(*inner_, index * chunk_size, out); };
  Status st = cache_->ReadChunks(key_, read.first, outs, fetch, &fetcher_->scheduler()->fetch_pool());
  if (st.ok()) {
    if (head) {
      const size_t in_chunk = static_cast<size_t>(read.offset - read.first * chunk_size);
      std::memcpy(buf.data(), head.get() + in_chunk, std::min(outs[0].size() - in_chunk, read.length));
    }
    if (tail) {
      const uint64_t start = read.last * chunk_size;
      std::memcpy(buf.data() + (start - read.offset), tail.get(),
                  static_cast<size_t>(read.offset + read.length - start));
    }
  }
  if (head) ReturnScratch(std::move(head));
  if (tail) ReturnScratch(std::move(tail));
  if (st.ok()) return st;
  return st.WithContext("cached " + Describe() +
                        (read.first == read.last ? " chunk " + std::to_string(read.first)
                                                 : " chunks " + std::to_string(read.first) + ".." +
                                                       std::to_string(read.last)));
}

}  // namespace ocifs
