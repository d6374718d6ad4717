#include "cache/readahead_strategy.h"

#include <algorithm>

namespace ocifs {

void ReadaheadStrategy::OnRead(const BlobRead& read) {
  if (read.served) return;  // the profile's pieces: the profile fetches what comes next
  auto ahead = policy_.OnRead(read.offset, read.length, fetcher_->size());
  if (!ahead) return;
  // The blob's stream (a first pass's) is about to bring these bytes: a request of
  // their own would race it for the chunk beyond its claims.
  if (fetcher_->StreamBrings(ahead->offset)) return;
  const uint64_t chunk_size = fetcher_->chunk_size();
  const uint64_t first = ahead->offset / chunk_size;
  const uint64_t end = (ahead->offset + ahead->length + chunk_size - 1) / chunk_size;
  // A wide window is a fast stream: half a window per request (at most
  // kMaxRunBytes), so the link is not idle a round trip per run_chunks_.
  const size_t wide = static_cast<size_t>(std::min<uint64_t>((end - first) / 2, kMaxRunBytes / chunk_size));
  fetcher_->Queue(TaskClass::kReadahead, first, end, std::max(run_chunks_, wide));
}

std::pair<uint64_t, uint64_t> MissStrategy::Group(uint64_t first, uint64_t last) const {
  return {first - first % group_chunks_, std::min(fetcher_->chunk_count(), (last / group_chunks_ + 1) * group_chunks_)};
}

Result<bool> MissStrategy::OnMiss(const BlobRead& read, std::span<uint8_t> buf) {
  const auto [group_first, group_end] = Group(read.first, read.last);
  // Small next to what a miss brings (its chunk, or its group): its own bytes
  // first. The whole chunks (with their group: one range, as one large chunk)
  // are queued first, so their transfer starts beside this read's; with the
  // queue full, the read takes the whole-chunk path so they still get cached.
  if (exact_ && read.length <= group_chunks_ * fetcher_->chunk_size() / 4) {
    const bool queued = group_chunks_ > 1 ? fetcher_->QueueOwed(group_first, group_end, group_end - group_first)
                                          : fetcher_->QueueOwed(read.first, read.last + 1, run_chunks_);
    if (queued) {
      Status st = fetcher_->ReadAround(read.offset, buf.first(read.length));
      if (!st.ok()) {
        return st.WithContext("cached " + fetcher_->Describe() + " bytes " + std::to_string(read.offset) + ".." +
                              std::to_string(read.offset + read.length));
      }
      return true;
    }
  }
  // A larger miss fetches its group with one range, then reads its chunks from disk.
  if (group_chunks_ > 1) {
    Status st = fetcher_->Fetch(group_first, group_end - group_first, group_end - group_first).status();
    if (!st.ok()) {
      return st.WithContext("cached " + fetcher_->Describe() + " chunks " + std::to_string(group_first) + ".." +
                            std::to_string(group_end - 1));
    }
  }
  return false;
}

}  // namespace ocifs
