// The two strategies that fetch a blob ahead of any read, in the background.
//
// ProfilePrefetch: the chunks an access profile names (access_profile.h; a
// profile of any chunk size is converted to the cache's), in its order, from
// construction on (or from a later StartProfile, for a profile found after
// the blob was opened). Adjacent chunks are coalesced into runs of at most
// run_chunks; `threads` kProfilePrefetch tasks take the runs in order.
// Only the first profile given is used.
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

namespace ocifs {

class ProfilePrefetch final : public FetchStrategy {
 public:
  ProfilePrefetch(std::shared_ptr<const BlobFetcher> fetcher, unsigned threads, size_t run_chunks);
  std::string name() const override { return "profile"; }
  bool StartProfile(const AccessProfile& profile) override;
  void Wait() override;

 private:
  void Worker();

  const std::shared_ptr<const BlobFetcher> fetcher_;
  const unsigned threads_;
  const size_t run_chunks_;
  std::atomic<bool> started_{false};
  std::vector<std::pair<uint64_t, uint64_t>> runs_;  // (first chunk, count), in order; set once by StartProfile
  std::atomic<size_t> next_{0};                       // the next run a worker takes
  std::mutex mu_;
  std::condition_variable done_cv_;
  unsigned running_ = 0;  // guarded by mu_: workers not yet ended
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
