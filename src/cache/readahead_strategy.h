// ReadaheadStrategy: read-ahead of sequential streams. Every read is shown to
// a ReadaheadPolicy (how far ahead, policy only); the windows it asks for are
// queued as kReadahead fetches of `run_chunks` chunks each.
// Thread safety: safe for concurrent use (the policy guards itself).
#pragma once

#include <memory>

#include "cache/blob_fetcher.h"
#include "cache/fetch_strategy.h"
#include "cache/readahead_policy.h"

namespace ocifs {

class ReadaheadStrategy final : public FetchStrategy {
 public:
  ReadaheadStrategy(std::shared_ptr<const BlobFetcher> fetcher, ReadaheadOptions options, size_t run_chunks)
      : fetcher_(std::move(fetcher)), policy_(options), run_chunks_(run_chunks) {}

  std::string name() const override { return "readahead"; }
  void OnRead(const BlobRead& read) override;
  void Wait() override { fetcher_->Wait(); }

  static constexpr uint64_t kMaxRunBytes = 8ull << 20;

 private:
  const std::shared_ptr<const BlobFetcher> fetcher_;
  ReadaheadPolicy policy_;
  const size_t run_chunks_;
};

// MissStrategy: what a read none of whose chunks is on disk or in flight
// fetches.
//  - exact: a read of at most a quarter of what a miss brings (its chunk, or
//    its group) fetches just its own bytes (one short range request) while
//    its chunks (with their group) follow as a kReadahead fetch: a random read
//    waits for a round trip, not for a chunk's transfer. That fetch is owed
//    (BlobFetcher::QueueOwed): a clean unmount finishes it.
//  - group_chunks > 1: a miss fetches its aligned group of chunks with one
//    range, as a chunk of the group's size would be fetched, so small chunks
//    (a precise profile) keep the neighbourhood a large chunk brings.
// Thread safety: safe for concurrent use (no state of its own).
class MissStrategy final : public FetchStrategy {
 public:
  MissStrategy(std::shared_ptr<const BlobFetcher> fetcher, bool exact, uint64_t group_chunks, size_t run_chunks)
      : fetcher_(std::move(fetcher)), exact_(exact), group_chunks_(std::max<uint64_t>(1, group_chunks)),
        run_chunks_(run_chunks) {}

  std::string name() const override { return "miss"; }
  bool WantsMisses() const override { return true; }
  [[nodiscard]] Result<bool> OnMiss(const BlobRead& read, std::span<uint8_t> buf) override;

 private:
  // The chunks [first, end) of the groups around chunks [first, last].
  std::pair<uint64_t, uint64_t> Group(uint64_t first, uint64_t last) const;

  const std::shared_ptr<const BlobFetcher> fetcher_;
  const bool exact_;
  const uint64_t group_chunks_;
  const size_t run_chunks_;
};

}  // namespace ocifs
