#include "cache/fetch_policy.h"

#include <algorithm>

#include "cache/background_fill.h"
#include "cache/blob_fetcher.h"
#include "cache/readahead_strategy.h"

namespace ocifs {
namespace {

// Every read's bytes, to the AccessRecorder (in its own unit).
class RecordReads final : public FetchStrategy {
 public:
  RecordReads(std::shared_ptr<AccessRecorder> recorder, std::string key)
      : recorder_(std::move(recorder)), key_(std::move(key)) {}
  std::string name() const override { return "record"; }
  void OnRead(const BlobRead& read) override { recorder_->Touch(key_, read.offset, read.length); }

 private:
  const std::shared_ptr<AccessRecorder> recorder_;
  const std::string key_;
};

}  // namespace

FetchPolicy FetchPolicy::ForCache(FetchPolicy p, uint32_t chunk_size, uint64_t cache_bytes) {
  // Fetching ahead into a small cache would evict chunks before they are read
  // (and overshoot its bound by the fetches in flight).
  p.readahead.max = std::min<uint64_t>(p.readahead.max, cache_bytes / 16);
  // The run sizes are in chunks of 1 MiB: smaller chunks make longer runs, the same bytes per request.
  const size_t scale = std::max<size_t>(1, (1u << 20) / chunk_size);
  p.max_run_chunks *= scale;
  p.prefetch_all_run_chunks *= scale;
  // A profile of small chunks is many short requests, each a round trip:
  // more of them in flight (8 at 1 MiB, up to 32), in runs that keep the
  // bytes in flight to 8 MiB.
  const auto more = static_cast<unsigned>(std::max<size_t>(1, scale / 2));
  p.profile_threads = std::min<unsigned>(32, p.profile_threads * more);
  p.profile_run_chunks = std::max<size_t>(1, (8u << 20) / p.profile_threads / chunk_size);
  if (p.readahead.max < 2ull * chunk_size) {
    p.readahead.max = 0;
    p.prefetch_all = false;
  }
  return p;
}

std::vector<std::unique_ptr<FetchStrategy>> MakeFetchStrategies(const FetchPolicy& p,
                                                                std::shared_ptr<const BlobFetcher> fetcher) {
  std::vector<std::unique_ptr<FetchStrategy>> out;
  const bool background = p.prefetch_threads > 0;
  if (p.recorder) out.push_back(std::make_unique<RecordReads>(p.recorder, fetcher->key()));
  if (background && p.readahead.max > 0) {
    out.push_back(std::make_unique<ReadaheadStrategy>(fetcher, p.readahead, p.max_run_chunks));
  }
  const uint64_t group_chunks = std::max<uint64_t>(1, p.miss_group_bytes / fetcher->chunk_size());
  const bool exact = p.exact_small_misses && background;
  if (exact || group_chunks > 1) {
    out.push_back(std::make_unique<MissStrategy>(fetcher, exact, group_chunks, p.max_run_chunks));
  }
  // Always present: a profile may be found after the blob was opened (StartProfile).
  auto profile = std::make_unique<ProfilePrefetch>(fetcher, p.profile_threads, p.profile_run_chunks,
                                                   p.profile_piece_threads, p.profile_piece_plan, p.profile_min_piece);
  if (p.profile) profile->StartProfile(*p.profile);
  out.push_back(std::move(profile));
  if (p.prefetch_all && background) {
    out.push_back(std::make_unique<PrefetchAll>(fetcher, p.prefetch_all_run_chunks, p.prefetch_all_rate));
  }
  return out;
}

}  // namespace ocifs
