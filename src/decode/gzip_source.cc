#include "decode/gzip_source.h"

#include "decode/zero_ranges.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "decode/gzip_indexer.h"
#include "base/worker_pool.h"
#include "decode/gzip_inflate.h"

namespace ocifs {

Result<std::shared_ptr<GzipSource>> GzipSource::Open(ByteSourcePtr compressed, const DecoderOptions& options) {
  if (!compressed) return InvalidArgument("gzip decoder: no compressed source");
  auto source = std::make_shared<GzipSource>(std::move(compressed), options);
  if (!source->TryLoadIndex() && options.background_pass) source->pass_.Start();
  return source;
}

namespace {

// options, with checkpoint_spacing raised to keep the checkpoints of a blob of
// `compressed_size` bytes near options.max_checkpoints.
DecoderOptions BoundedSpacing(DecoderOptions options, uint64_t compressed_size) {
  if (compressed_size != ByteSource::kUnknownSize && options.max_checkpoints > 0) {
    const uint64_t per = (compressed_size + options.max_checkpoints - 1) / options.max_checkpoints;
    options.checkpoint_spacing = std::max(options.checkpoint_spacing, per);
  }
  return options;
}

}  // namespace

GzipSource::GzipSource(ByteSourcePtr compressed, const DecoderOptions& options)
    : compressed_(std::move(compressed)),
      options_(BoundedSpacing(options, compressed_->size())),
      cache_(options.segment_cache_bytes,
             static_cast<size_t>(std::max<uint64_t>(
                 2, options_.segment_cache_bytes / std::max<uint64_t>(options_.checkpoint_spacing, 1)))),
      pass_(options.scheduler, "gzip pass of " + compressed_->Describe(), [this] { RunPass(); }) {
  pass_.OnCancel([this] { OnPassCancelled(); });
}

GzipSource::~GzipSource() = default;

void GzipSource::OnPassCancelled() const {
  std::lock_guard lock(mu_);
  if (!complete_ && failure_.ok()) failure_ = Cancelled("gzip pass over " + compressed_->Describe() + " cancelled");
  cv_.notify_all();
}

size_t GzipSource::checkpoint_count() const {
  std::lock_guard lock(mu_);
  return checkpoints_.size();
}

bool GzipSource::TryLoadIndex() {
  const std::string& path = options_.index_path;
  if (path.empty()) return false;
  Result<GzipIndex> index = GzipIndex::Load(path);
  if (!index.ok()) {
    if (index.status().code() != Code::kNotFound) {
      spdlog::warn("ignoring gzip index of {} and rebuilding it: {}", compressed_->Describe(),
                   index.status().ToString());
    }
    return false;
  }
  uint64_t csize = compressed_->size();
  std::vector<uint8_t> tail(index->tail.size());
  bool same = csize == index->compressed_size;
  if (same && !tail.empty()) {
    Status s = ReadExactly(*compressed_, csize - tail.size(), tail);
    same = s.ok() && tail == index->tail;
  }
  if (!same) {
    spdlog::warn("ignoring gzip index {}: it was built for another blob than {}", path, compressed_->Describe());
    return false;
  }
  for (const auto& [start, end] : index->zero_runs) zeros_.Add(start, end);
  zeros_complete_.store(index->zero_runs_known);
  std::lock_guard lock(mu_);
  checkpoints_ = std::move(index->checkpoints);
  frontier_ = index->decompressed_size;
  complete_ = true;
  size_.store(index->decompressed_size, std::memory_order_release);
  loaded_from_file_ = true;
  return true;
}

void GzipSource::RunPass() const {
  GzipIndexer indexer(*compressed_, compressed_->Describe(), options_.checkpoint_spacing);
  // The span being produced (open_span_) is read by readers following the
  // pass, and handed to the segment cache when it closes, so they never
  // inflate it again (a reader right behind the frontier would otherwise
  // inflate its span from the checkpoint once per read).
  auto close_span = [&]() {  // needs mu_; returns the span to cache, if any
    std::pair<size_t, SegmentCache::Buffer> closed{open_span_index_, nullptr};
    if (open_span_valid_) closed.second = std::make_shared<const std::vector<uint8_t>>(std::move(open_span_));
    open_span_ = {};
    open_span_valid_ = false;
    return closed;
  };
  GzipIndexer::Callbacks cb;
  cb.on_checkpoint = [&](GzipCheckpoint cp) {
    std::pair<size_t, SegmentCache::Buffer> closed{0, nullptr};
    {
      std::lock_guard lock(mu_);
      if (!checkpoints_.empty()) closed = close_span();
      open_span_index_ = checkpoints_.size();
      checkpoints_.push_back(std::move(cp));
      open_span_valid_ = true;
      // Room for a span up front: grown by doubling, it would hold twice what the cache counts.
      open_span_.reserve(std::min<uint64_t>(options_.checkpoint_spacing / 4 * 5, options_.segment_cache_bytes));
    }
    if (closed.second) cache_.Put(closed.first, std::move(closed.second));
  };
  ZeroRunTracker zero_runs(zeros_);
  cb.on_output = [&](uint64_t out, std::span<const uint8_t> data) {
    zero_runs.Feed(out, data);  // before the frontier moves: readers then find them known
    std::lock_guard lock(mu_);
    if (open_span_valid_ && open_span_.size() + data.size() <= options_.segment_cache_bytes) {
      open_span_.insert(open_span_.end(), data.begin(), data.end());
    } else if (open_span_valid_) {
      open_span_ = {};  // too big to cache: its readers inflate their part
      open_span_valid_ = false;
    }
    frontier_ = out + data.size();
    cv_.notify_all();
  };
  Result<uint64_t> result = indexer.Run(cb, pass_.cancelled());
  std::pair<size_t, SegmentCache::Buffer> closed{0, nullptr};
  {
    std::lock_guard lock(mu_);
    closed = close_span();
  }
  if (result.ok()) {
    zero_runs.Finish(*result);
    zeros_complete_.store(true);
  }
  if (result.ok() && closed.second) cache_.Put(closed.first, std::move(closed.second));
  FinishPass(std::move(result));
  std::lock_guard lock(mu_);
  pass_finished_ = true;
  cv_.notify_all();
}

void GzipSource::FinishPass(Result<uint64_t> result) const {
  GzipIndex index;
  {
    std::lock_guard lock(mu_);
    if (!result.ok()) {
      failure_ = result.status();
      if (result.status().code() != Code::kCancelled) {
        spdlog::error("gzip pass over {} failed: {}", compressed_->Describe(), failure_.ToString());
      }
    } else {
      complete_ = true;
      frontier_ = *result;
      size_.store(*result, std::memory_order_release);
    }
    cv_.notify_all();
  }
  if (!result.ok() || options_.index_path.empty()) return;
  index.compressed_size = compressed_->size();
  index.decompressed_size = *result;
  index.spacing = options_.checkpoint_spacing;
  index.zero_runs = zeros_.Ranges();
  if (index.compressed_size != kUnknownSize) {
    index.tail.resize(std::min<uint64_t>(GzipIndex::kMaxTail, index.compressed_size));
    Status s = ReadExactly(*compressed_, index.compressed_size - index.tail.size(), index.tail);
    // checkpoints_ no longer grows once complete_; readers only copy from it
    // under mu_, and only this thread changes it (ApplyTo, below, under mu_).
    Result<GzipIndex::SavedWindows> saved =
        s.ok() ? index.SaveWithPlaces(options_.index_path, checkpoints_) : Result<GzipIndex::SavedWindows>(s);
    if (!saved.ok()) {
      spdlog::warn("could not save the gzip index of {}: {}", compressed_->Describe(), saved.status().ToString());
      return;
    }
    // Saved: read windows from the file from now on, and free the ones in memory.
    std::lock_guard lock(mu_);
    saved->ApplyTo(checkpoints_);
  }
}

Status GzipSource::WaitUntilIndexed() const {
  if (!loaded_from_file_) pass_.Need();
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return (complete_ && (pass_finished_ || loaded_from_file_)) || !failure_.ok(); });
  return failure_;
}

Result<SegmentCache::Buffer> GzipSource::Segment(const Piece& p) const {
  return cache_.GetOrLoad(p.index, p.need, [&]() -> Result<SegmentCache::Buffer> {
    GzipCheckpoint checkpoint;  // copied (its window may be in memory) only when it is needed
    {
      std::lock_guard lock(mu_);
      checkpoint = checkpoints_[p.index];
    }
    OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                           InflateFromCheckpoint(*compressed_, checkpoint, p.load, p.compressed_hint, Describe()));
    if (bytes.size() < p.load) {
      return Corrupt("gzip data of " + compressed_->Describe() + " ends at decompressed offset " +
                     std::to_string(p.out + bytes.size()) + ", before its index says (" +
                     std::to_string(p.out + p.load) + ")");
    }
    // An index loaded from a version 1 file knows no zeros: learn them from a whole span.
    if (loaded_from_file_ && p.whole && !zeros_complete_.load()) {
      zeros_.AddFrom(p.out, bytes);
      std::lock_guard lock(mu_);
      if (scanned_spans_.size() <= p.index) scanned_spans_.resize(p.index + 1);
      scanned_spans_[p.index] = true;
    }
    return std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  });
}

void GzipSource::Prefetch(uint64_t offset, uint64_t length) const {
  uint64_t in_start = 0, in_end = 0;
  {
    std::lock_guard lock(mu_);
    if (!complete_ || checkpoints_.empty() || length == 0 || offset >= frontier_) return;
    const uint64_t end = offset + std::min(length, frontier_ - offset);
    auto it = std::upper_bound(checkpoints_.begin(), checkpoints_.end(), offset,
                               [](uint64_t p, const GzipCheckpoint& c) { return p < c.out; });
    size_t i = static_cast<size_t>(it - checkpoints_.begin()) - 1;
    in_start = checkpoints_[i].in > 0 ? checkpoints_[i].in - 1 : 0;  // the checkpoint may start mid-byte
    size_t j = i;
    while (j + 1 < checkpoints_.size() && checkpoints_[j + 1].out < end) ++j;
    in_end = j + 1 < checkpoints_.size() ? checkpoints_[j + 1].in + 1 : compressed_->size();
  }
  if (in_end > in_start && in_end != kUnknownSize) compressed_->Prefetch(in_start, in_end - in_start);
}

bool GzipSource::SpanScannedLocked(size_t index) const {
  return index < scanned_spans_.size() && scanned_spans_[index];
}

GzipSource::Piece GzipSource::PieceAtLocked(uint64_t pos, uint64_t end) const {
  // The span [checkpoint i, checkpoint i + 1) holding pos.
  auto it = std::upper_bound(checkpoints_.begin(), checkpoints_.end(), pos,
                             [](uint64_t p, const GzipCheckpoint& c) { return p < c.out; });
  Piece piece;
  piece.index = static_cast<size_t>(it - checkpoints_.begin()) - 1;
  const GzipCheckpoint& cp = checkpoints_[piece.index];
  piece.out = cp.out;
  const bool has_next = piece.index + 1 < checkpoints_.size();
  const uint64_t span_end = has_next ? checkpoints_[piece.index + 1].out : frontier_;
  piece.from = pos;
  piece.to = std::min(end, span_end);
  piece.need = static_cast<size_t>(piece.to - cp.out);
  // A closed span is inflated whole, so the segment cache can serve its other
  // reads. One larger than the cache (a deflate block of zeros spans
  // megabytes) only up to the read's end, once its runs of zeros are known
  // (from the pass; after a loaded index, from inflating it whole once).
  const uint64_t span_bytes = span_end - cp.out;
  piece.whole = (has_next || complete_) &&
                (span_bytes <= options_.segment_cache_bytes ||
                 (loaded_from_file_ && !zeros_complete_.load() && !SpanScannedLocked(piece.index)));
  piece.load = piece.whole ? static_cast<size_t>(span_bytes) : piece.need;
  piece.compressed_hint = has_next ? checkpoints_[piece.index + 1].in - cp.in + 1 : 0;
  return piece;
}

Result<Extent> GzipSource::ExtentAt(uint64_t offset) const {
  {
    std::lock_guard lock(mu_);
    if (!failure_.ok()) return failure_;
  }
  const uint64_t limit = size();  // kUnknownSize until the index is complete
  if (offset >= limit) return Extent{offset, 0, false};
  return zeros_.ExtentAt(offset, limit);
}

Result<size_t> GzipSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (buf.empty()) return size_t{0};
  uint64_t end = offset + std::min<uint64_t>(buf.size(), UINT64_MAX - offset);
  std::vector<Piece> pieces;
  {
    std::unique_lock lock(mu_);
    if (!complete_ && failure_.ok() && frontier_ < end) {
      lock.unlock();
      pass_.Need();
      lock.lock();
      cv_.wait(lock, [&] { return complete_ || !failure_.ok() || frontier_ >= end; });
    }
    if (!failure_.ok()) return failure_;
    end = std::min(end, frontier_);  // frontier_ == size once complete_
    for (uint64_t pos = offset; pos < end; pos = pieces.back().to) pieces.push_back(PieceAtLocked(pos, end));
    // Known zeros, and the part in the span the pass is producing: served
    // here, no inflate.
    std::erase_if(pieces, [&](const Piece& p) {
      auto out = buf.subspan(static_cast<size_t>(p.from - offset), static_cast<size_t>(p.to - p.from));
      if (zeros_.Contains(p.from, p.to)) {
        std::fill(out.begin(), out.end(), 0);
        return true;
      }
      if (open_span_valid_ && p.index == open_span_index_ && p.need <= open_span_.size()) {
        std::copy_n(open_span_.begin() + static_cast<ptrdiff_t>(p.from - p.out), out.size(), out.begin());
        return true;
      }
      return false;
    });
  }
  // The spans of one read inflate side by side (each from its own checkpoint).
  std::vector<SegmentCache::Buffer> spans(pieces.size());
  OCIFS_RETURN_IF_ERROR(pass_.scheduler().decode_pool().ParallelFor(pieces.size(), [&](size_t k) -> Status {
    const Piece& p = pieces[k];
    OCIFS_ASSIGN_OR_RETURN(spans[k], Segment(p));
    return Status::Ok();
  }));
  for (size_t k = 0; k < pieces.size(); ++k) {
    const Piece& p = pieces[k];
    std::copy(spans[k]->begin() + static_cast<ptrdiff_t>(p.from - p.out),
              spans[k]->begin() + static_cast<ptrdiff_t>(p.need), buf.begin() + static_cast<ptrdiff_t>(p.from - offset));
  }
  return static_cast<size_t>(std::max(end, offset) - offset);
}

}  // namespace ocifs
