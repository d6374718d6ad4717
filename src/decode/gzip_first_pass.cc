#include "decode/gzip_first_pass.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>
#include <utility>

#include "base/file_lock.h"
#include "decode/block_checksums.h"
#include "decode/gzip_indexer.h"
#include "decode/sequential_reader.h"

namespace ocifs {

GzipFirstPass::GzipFirstPass(const Target& target)
    : t_(target), pass_(target.options.scheduler, "gzip pass of " + target.compressed.Describe(), [this] { Run(); }) {
  t_.progress.Follow(pass_);
}

bool GzipFirstPass::CopyFromOpenSpan(size_t index, uint64_t from, std::span<uint8_t> out) const {
  std::lock_guard lock(span_mu_);
  if (!open_valid_ || open_index_ != index || from + out.size() > open_span_.size()) return false;
  std::copy_n(open_span_.begin() + static_cast<ptrdiff_t>(from), out.size(), out.begin());
  return true;
}

std::pair<size_t, SegmentCache::Buffer> GzipFirstPass::CloseSpanLocked() {
  std::pair<size_t, SegmentCache::Buffer> closed{open_index_, nullptr};
  if (open_valid_) closed.second = std::make_shared<const std::vector<uint8_t>>(std::move(open_span_));
  open_span_ = {};
  open_valid_ = false;
  return closed;
}

void GzipFirstPass::OnCheckpoint(GzipCheckpoint checkpoint) {
  // The span being produced (open_span_) is read by readers following the
  // pass, and handed to the segment cache when it closes, so they never
  // inflate it again (a reader right behind the frontier would otherwise
  // inflate its span from the checkpoint once per read). The table grows
  // first: a reader who sees the new checkpoint still finds the closed span here.
  // A checkpoint placed for a target lies behind the frontier: the open
  // span's bytes past it are the new span's first bytes.
  const uint64_t at = checkpoint.out;
  const size_t index = t_.checkpoints.Append(std::move(checkpoint));
  std::pair<size_t, SegmentCache::Buffer> closed{0, nullptr};
  {
    std::lock_guard lock(span_mu_);
    std::vector<uint8_t> carried;
    bool valid = at == frontier_;
    if (index > 0 && open_valid_ && at >= open_out_ && at - open_out_ <= open_span_.size()) {
      const auto split = open_span_.begin() + static_cast<ptrdiff_t>(at - open_out_);
      carried.assign(split, open_span_.end());
      open_span_.erase(split, open_span_.end());
      valid = true;
    }
    if (index > 0) closed = CloseSpanLocked();
    open_index_ = index;
    open_out_ = at;
    open_valid_ = valid;  // else the bytes from `at` are gone: its readers inflate their part
    open_span_ = std::move(carried);
    // Room for a span up front: grown by doubling, it would hold twice what the cache counts.
    open_span_.reserve(std::min<uint64_t>(t_.options.checkpoint_spacing / 4 * 5, t_.options.segment_cache_bytes));
  }
  if (closed.second) t_.cache.Put(closed.first, std::move(closed.second));
}

void GzipFirstPass::OnOutput(uint64_t out, std::span<const uint8_t> data) {
  {
    std::lock_guard lock(span_mu_);
    frontier_ = out + data.size();
    if (open_valid_ && open_span_.size() + data.size() <= t_.options.segment_cache_bytes) {
      open_span_.insert(open_span_.end(), data.begin(), data.end());
    } else if (open_valid_) {
      open_span_ = {};  // too big to cache: its readers inflate their part
      open_valid_ = false;
    }
  }
  t_.progress.Advance(out + data.size());
}

bool GzipFirstPass::FollowOtherPass(UniqueFd* lease) {
  const std::string& path = t_.options.pass_lease_path;
  if (t_.options.pass_lease_taken && t_.options.pass_lease_taken->valid()) *lease = std::move(*t_.options.pass_lease_taken);
  bool waited = false;
  while (!lease->valid()) {
    bool failed = false;
    *lease = TryLockFile(path, &failed);
    if (lease->valid()) break;
    if (failed) {
      spdlog::warn("gzip pass over {}: cannot use the pass lease {}; streaming the layer", t_.compressed.Describe(),
                   path);
      role_.store(Role::kOwn, std::memory_order_release);
      return false;
    }
    if (!waited) {
      role_.store(Role::kFollowing, std::memory_order_release);
      spdlog::info("gzip pass over {}: another process streams this layer; using its index when it is done",
                   t_.compressed.Describe());
    }
    waited = true;
    if (pass_.cancelled()) {
      role_.store(Role::kOwn, std::memory_order_release);
      t_.progress.Fail(Cancelled("gzip pass over " + t_.compressed.Describe() + " cancelled"));
      t_.progress.Finish();
      return true;
    }
    // Polled: a pass takes seconds, so 20 ms costs nothing, and the wait stays cancellable.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The lease is ours (readers following the other pass go back to waiting
  // on this one's progress). An index saved meanwhile (by the pass we waited for,
  // or one that ended between our open and now) makes streaming needless.
  if (!t_.adopt_saved_index || (!waited && ::access(t_.options.index_path.c_str(), F_OK) != 0)) return false;
  std::optional<uint64_t> size = t_.adopt_saved_index();
  if (!size) {
    if (waited) spdlog::info("gzip pass over {}: no index from the other process; streaming the layer here",
                             t_.compressed.Describe());
    return false;
  }
  spdlog::debug("gzip pass over {}: adopted the index another process saved", t_.compressed.Describe());
  lease->reset();
  t_.progress.Complete(*size);
  t_.progress.Finish();
  return true;
}

void GzipFirstPass::Run() {
  UniqueFd lease;  // held until the index is saved: followers then adopt it
  const bool over =
      !t_.options.pass_lease_path.empty() && !t_.options.index_path.empty() && FollowOtherPass(&lease);
  role_.store(Role::kOwn, std::memory_order_release);
  if (over) return;
  if (t_.keeper) t_.keeper->Begin();  // before any output: followers elsewhere read what it publishes
  GzipIndexer indexer(t_.compressed, t_.compressed.Describe(), t_.options.checkpoint_spacing);
  indexer.SetReadAhead(t_.options.pass_read_ahead);
  const auto started = std::chrono::steady_clock::now();
  // The saved index's checksum blocks (the default for a size the format does not allow).
  const uint32_t block_size = t_.options.checksum_block_size != 0 && GzipIndex::ValidBlockSize(t_.options.checksum_block_size)
                                  ? t_.options.checksum_block_size
                                  : GzipIndex::kDefaultBlockSize;
  if (!t_.options.checkpoint_targets.empty()) {
    GzipTargetPlacer::Limits limits;
    limits.gap = t_.options.checkpoint_target_gap;
    limits.spacing = t_.options.checkpoint_target_spacing;
    limits.budget = static_cast<size_t>(t_.options.max_target_checkpoints);
    limits.max_window_bytes = t_.options.max_target_window_bytes;
    limits.align = block_size;
    std::vector<GzipTargetPlacer::Point> points =
        GzipTargetPlacer::Plan(t_.options.checkpoint_targets, limits.gap, limits.budget, limits.spacing);
    spdlog::debug("gzip pass over {}: {} checkpoint targets for {} ranges", t_.compressed.Describe(), points.size(),
                  t_.options.checkpoint_targets.size());
    indexer.SetTargets(std::move(points), limits);
  }
  ZeroRunTracker zero_runs(t_.zeros);
  BlockCrcBuilder block_crcs(block_size);  // the saved index's checksums
  GzipIndexer::Callbacks cb;
  cb.on_checkpoint = [&](GzipCheckpoint cp) { OnCheckpoint(std::move(cp)); };
  cb.on_output = [&](uint64_t out, std::span<const uint8_t> data) {
    zero_runs.Feed(out, data);  // before the frontier moves: readers then find them known
    block_crcs.Feed(data);
    if (t_.keeper) t_.keeper->Feed(out, data);
    OnOutput(out, data);
  };
  Result<uint64_t> result = indexer.Run(cb, pass_.cancelled());
  LogStreamPass("gzip pass over " + t_.compressed.Describe(), indexer.stats().compressed_bytes,
                indexer.stats().read_time, started);
  std::pair<size_t, SegmentCache::Buffer> closed{0, nullptr};
  {
    std::lock_guard lock(span_mu_);
    closed = CloseSpanLocked();
  }
  if (result.ok()) {
    zero_runs.Finish(*result);
    if (closed.second) t_.cache.Put(closed.first, std::move(closed.second));
    if (t_.keeper) {
      t_.keeper->Finish(*result);
      spdlog::debug("gzip pass over {}: kept {} decompressed chunks", t_.compressed.Describe(),
                    t_.keeper->stored_chunks());
    }
    t_.progress.Complete(*result);
    SaveIndex(*result, block_crcs.block_size(), block_crcs.Finish());
  } else {
    if (result.status().code() != Code::kCancelled) {
      if (t_.keeper) t_.keeper->Withdraw();  // a corrupt layer: nothing it kept may be read elsewhere
      spdlog::error("gzip pass over {} failed: {}", t_.compressed.Describe(), result.status().ToString());
    }
    t_.progress.Fail(result.status());
  }
  t_.progress.Finish();
}

void GzipFirstPass::SaveIndex(uint64_t size, uint32_t block_size, std::vector<uint32_t> block_crcs) {
  GzipIndex index;
  index.compressed_size = t_.compressed.size();
  if (t_.options.index_path.empty() || index.compressed_size == ByteSource::kUnknownSize) return;
  index.decompressed_size = size;
  index.spacing = t_.options.checkpoint_spacing;
  index.zero_runs = t_.zeros.Ranges();
  index.block_size = block_size;
  index.block_crcs = std::move(block_crcs);
  index.tail.resize(std::min<uint64_t>(GzipIndex::kMaxTail, index.compressed_size));
  Status s = ReadExactly(t_.compressed, index.compressed_size - index.tail.size(), index.tail);
  if (s.ok()) s = t_.checkpoints.SaveComplete(index, t_.options.index_path);
  if (!s.ok()) spdlog::warn("could not save the gzip index of {}: {}", t_.compressed.Describe(), s.ToString());
}

}  // namespace ocifs
