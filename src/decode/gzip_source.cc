#include "decode/gzip_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "base/worker_pool.h"
#include "decode/gzip_inflate.h"

namespace ocifs {

SpanLoad ChooseSpanLoad(const SpanFacts& span) {
  if (!span.closed) return SpanLoad::kToReadEnd;
  if (span.bytes <= span.cache_bytes || span.zeros_unknown) return SpanLoad::kWhole;
  return SpanLoad::kToReadEnd;
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

// The most a read inflates from one checkpoint of an index with checksums
// (one that may be wrong): a first pass makes spans of its spacing plus one
// deflate block, so a longer one is a wrong index, not an allocation to try.
uint64_t MaxVerifiedInflate(uint64_t spacing) { return std::max<uint64_t>(256ull << 20, 4 * spacing); }

}  // namespace

Result<std::shared_ptr<GzipSource>> GzipSource::Open(ByteSourcePtr compressed, const DecoderOptions& options,
                                                     SavedIndex saved) {
  if (!compressed) return InvalidArgument("gzip decoder: no compressed source");
  std::optional<GzipIndex> index;
  if (saved == SavedIndex::kLoad) index = LoadGzipIndexFor(*compressed, options.index_path);
  if (saved == SavedIndex::kLoad && !index) {
    index = OpenLazyGzipIndexFor(*compressed, options.gzip_index_blob, options.gzip_index_name,
                                 options.gzip_index_from);
  }
  // kRebuild: the saved index proved wrong, so the pass must not adopt it either.
  std::shared_ptr<GzipSource> source(
      new GzipSource(std::move(compressed), options, std::move(index), saved == SavedIndex::kLoad));
  if (source->pass_ && options.background_pass) source->pass_->Start();
  return source;
}

GzipSource::GzipSource(ByteSourcePtr compressed, const DecoderOptions& options, std::optional<GzipIndex> index,
                       bool may_adopt)
    : compressed_(std::move(compressed)),
      options_(BoundedSpacing(options, compressed_->size())),
      scheduler_(options.scheduler ? options.scheduler : Scheduler::Shared()),
      cache_(options.segment_cache_bytes,
             static_cast<size_t>(std::max<uint64_t>(
                 2, options_.segment_cache_bytes / std::max<uint64_t>(options_.checkpoint_spacing, 1)))),
      progress_("gzip pass over " + compressed_->Describe()) {
  if (!index) {
    if (options_.decoded_store && options_.keep_pass_output) {
      if (may_adopt && !options_.pass_progress_path.empty() && !options_.pass_lease_path.empty() &&
          !options_.index_path.empty()) {
        Result<std::unique_ptr<SharedPassProgress>> shared = SharedPassProgress::Open(options_.pass_progress_path);
        if (shared.ok()) {
          shared_ = std::move(*shared);
          follower_ = std::make_unique<PassOutputFollower>(*shared_, options_.decoded_store);
        } else {
          spdlog::warn("gzip pass over {}: no shared progress (mounts waiting for this pass wait for its end): {}",
                       compressed_->Describe(), shared.status().ToString());
        }
      }
      keeper_ = std::make_unique<PassOutputKeeper>(options_.decoded_store, shared_.get());
    }
    std::function<std::optional<uint64_t>()> adopt;
    if (may_adopt) adopt = [this] { return AdoptSavedIndex(); };
    GzipFirstPass::Target target{*compressed_, options_, checkpoints_, progress_, zeros_, cache_, keeper_.get(),
                                 std::move(adopt)};
    if (!options_.index_path.empty()) {
      checkpoints_.SpillWindowsTo(std::filesystem::path(options_.index_path).parent_path().string());
    }
    pass_ = std::make_unique<GzipFirstPass>(target);
    tail_ahead_ = std::make_unique<GzipTailAhead>(*compressed_, scheduler_, progress_);
    return;
  }
  // No pass: a lease the opener took for one is released now (a pass elsewhere waits for it).
  if (options_.pass_lease_taken) options_.pass_lease_taken->reset();
  const uint64_t size = index->decompressed_size;
  InstallIndex(std::move(*index));
  progress_.Complete(size);
  progress_.Finish();
  if (options_.record_compressed) options_.record_compressed(0, 0);  // the reports start
  if (options_.index_spans) {
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    const size_t n = checkpoints_.count();
    for (size_t k = 0; k < n; ++k) {
      const GzipCheckpoint cp = checkpoints_.At(k);
      const uint64_t end = k + 1 < n ? checkpoints_.At(k + 1).in + 1 + kSpanReadPast : compressed_->size();
      spans.emplace_back(cp.in - (cp.bits > 0 ? 1 : 0), end);
    }
    options_.index_spans(spans);
  }
}

void GzipSource::InstallIndex(GzipIndex index) {
  for (const auto& [start, end] : index.zero_runs) zeros_.Add(start, end);
  if (!index.zero_runs_known) v1_zeros_.Start(index.checkpoints.size());
  if (index.has_checksums()) {
    checks_ = std::make_unique<const BlockChecksums>(index.block_size, std::move(index.block_crcs),
                                                     index.decompressed_size, compressed_->Describe());
  }
  checkpoints_.Reset(std::move(index.checkpoints));
}

std::optional<uint64_t> GzipSource::AdoptSavedIndex() {
  std::optional<GzipIndex> index = LoadGzipIndexFor(*compressed_, options_.index_path);
  // Only one a first pass saved (zero runs known: an index installed from an
  // artifact has them dropped, gzip_saved_index.h) with checksums: its reads
  // are verified as a loaded one's, though without IndexFallbackSource's way
  // back (a mismatch is EIO): the pass we waited for saved it from this blob.
  if (!index || !index->zero_runs_known || !index->has_checksums()) return std::nullopt;
  const uint64_t size = index->decompressed_size;
  InstallIndex(std::move(*index));
  return size;
}

Result<SegmentCache::Buffer> GzipSource::Segment(const Piece& p) const {
  const size_t load = p.load == SpanLoad::kWhole ? static_cast<size_t>(p.span.end - p.span.out) : p.need;
  if (checks_ && load > MaxVerifiedInflate(options_.checkpoint_spacing)) {
    return DataLoss("gzip index of " + compressed_->Describe() + " is wrong: its span at decompressed offset " +
                    std::to_string(p.span.out) + " is " + std::to_string(p.span.end - p.span.out) +
                    " bytes, longer than a first pass makes");
  }
  // Checked, the layer's last span inflated to its end asks for one byte
  // more: a stream that goes on is longer than the index says.
  const bool to_end = checks_ && !p.span.has_next && p.span.out + load == p.span.end;
  return cache_.GetOrLoad(p.span.index, p.need, [&]() -> Result<SegmentCache::Buffer> {
    // The pass kept this span's bytes: a copy from the cache, not an inflate.
    if (keeper_) {
      std::vector<uint8_t> kept(load);
      if (keeper_->Copy(p.span.out, kept)) return std::make_shared<const std::vector<uint8_t>>(std::move(kept));
    }
    // The index was adopted from another process's pass: the chunks it kept
    // and published, if they are still there, checked against the index's
    // checksums like an inflate's output (a mismatch: inflated instead).
    if (follower_ && checks_) {
      std::vector<uint8_t> copied(load);
      if (follower_->Copy(p.span.out, copied) == PassOutputFollower::Outcome::kServed &&
          CheckInflated(p, copied).ok()) {
        return std::make_shared<const std::vector<uint8_t>>(std::move(copied));
      }
    }
    // Copied (its window may be in memory) only when it is needed.
    const GzipCheckpoint checkpoint = checkpoints_.At(p.span.index);
    std::vector<uint64_t> marks;
    OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                           InflateFromCheckpoint(*compressed_, checkpoint, load + (to_end ? 1 : 0),
                                                 p.span.compressed_hint, Describe(),
                                                 options_.record_compressed ? &marks : nullptr));
    if (options_.record_compressed) {
      std::lock_guard lock(marks_mu_);
      std::vector<uint64_t>& kept = marks_[p.span.index];
      if (marks.size() > kept.size()) kept = std::move(marks);
    }
    if (bytes.size() < load) {
      return Corrupt("gzip data of " + compressed_->Describe() + " ends at decompressed offset " +
                     std::to_string(p.span.out + bytes.size()) + ", before its index says (" +
                     std::to_string(p.span.out + load) + ")");
    }
    if (bytes.size() > load) {
      return DataLoss("gzip index of " + compressed_->Describe() + " is wrong: the layer goes on past its " +
                      std::to_string(p.span.end) + " decompressed bytes");
    }
    OCIFS_RETURN_IF_ERROR(CheckInflated(p, bytes));
    return std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  });
}

Status GzipSource::CheckInflated(const Piece& p, std::vector<uint8_t>& bytes) const {
  const bool whole = p.load == SpanLoad::kWhole;
  if (!checks_) {
    if (whole) v1_zeros_.Learn(p.span.index, p.span.out, bytes);
    return Status::Ok();
  }
  // The same bytes as a read of known zeros gets, so a block reads the same
  // whichever way; then each of its whole blocks is checked once.
  zeros_.ZeroFill(p.span.out, bytes);
  OCIFS_RETURN_IF_ERROR(checks_->Check(p.span.out, bytes));
  if (whole) {
    // Zeros are learnt from verified blocks only: the span's whole blocks (its
    // edge blocks are shared with its neighbours: learnt when a read checks them).
    const auto [from, to] = checks_->WholeBlocks(p.span.out, p.span.out + bytes.size());
    v1_zeros_.Learn(p.span.index, from,
                    std::span<const uint8_t>(bytes).subspan(static_cast<size_t>(from - p.span.out),
                                                            static_cast<size_t>(to - from)));
  }
  return Status::Ok();
}

void GzipSource::Prefetch(uint64_t offset, uint64_t length) const {
  const uint64_t size = progress_.size();  // kUnknownSize until complete
  if (size == kUnknownSize || length == 0 || offset >= size) return;
  const uint64_t end = offset + std::min(length, size - offset);
  const auto [in_start, in_end] = checkpoints_.CompressedRange(offset, end, compressed_->size());
  if (in_end > in_start && in_end != kUnknownSize) compressed_->Prefetch(in_start, in_end - in_start);
}

Result<Extent> GzipSource::ExtentAt(uint64_t offset) const {
  OCIFS_RETURN_IF_ERROR(progress_.failure());
  const uint64_t limit = size();  // kUnknownSize until the index is complete
  if (offset >= limit) return Extent{offset, 0, false};
  return zeros_.ExtentAt(offset, limit);
}

GzipSource::Piece GzipSource::MakePiece(const GzipCheckpoints::Span& span, uint64_t from, uint64_t to,
                                        bool complete) const {
  Piece piece;
  piece.span = span;
  piece.from = std::max(from, span.out);
  piece.to = std::min(to, span.end);
  piece.need = static_cast<size_t>(piece.to - span.out);
  piece.load = ChooseSpanLoad({.bytes = span.end - span.out,
                               .closed = span.has_next || complete,
                               .cache_bytes = options_.segment_cache_bytes,
                               .zeros_unknown = v1_zeros_.Learning(span.index)});
  return piece;
}

bool GzipSource::ServeWithoutInflating(const Piece& p, bool complete, std::span<uint8_t> out) const {
  if (zeros_.Contains(p.from, p.to)) {
    std::fill(out.begin(), out.end(), 0);
    return true;
  }
  // Bytes the pass kept: a copy of just them, not a load of their whole span
  // (zero-filled, copied from the kept chunks, then copied again) per span.
  if (keeper_ && keeper_->Copy(p.from, out)) return true;
  // Once complete, the pass holds no open span.
  return pass_ && !complete && pass_->CopyFromOpenSpan(p.span.index, p.from - p.span.out, out);
}

std::optional<size_t> GzipSource::ReadBehindOtherPass(uint64_t offset, std::span<uint8_t> buf) const {
  auto pause = std::chrono::microseconds(1000);
  // A pass not started yet (no background pass) is left to the progress's
  // wait, which runs it; one posted but undecided (its task waits for a
  // thread: a busy machine) is given 10 s to take the lease or find it held,
  // after which the progress's wait runs it here.
  const auto undecided_until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    const uint32_t sequence = shared_->WakeSequence();  // before looking: see WaitForChange
    const GzipFirstPass::Role role = pass_->role();
    if (role == GzipFirstPass::Role::kOwn) return std::nullopt;
    if (progress_.complete() || !progress_.failure().ok()) return std::nullopt;
    if (role == GzipFirstPass::Role::kUndecided &&
        (!pass_->started() || std::chrono::steady_clock::now() > undecided_until)) {
      return std::nullopt;
    }
    if (role == GzipFirstPass::Role::kFollowing) {
      switch (follower_->Copy(offset, buf)) {
        case PassOutputFollower::Outcome::kServed:
          return buf.size();
        case PassOutputFollower::Outcome::kMissing:
          return std::nullopt;
        case PassOutputFollower::Outcome::kAhead:
          break;
      }
    }
    // The holder wakes this wait with each chunk it publishes; the timeout
    // (1 ms growing to 5 ms) rechecks the role, the progress and a holder
    // that does not wake (an older build).
    shared_->WaitForChange(sequence, pause);
    pause = std::min(pause * 2, std::chrono::microseconds(5000));
  }
}

void GzipSource::HintLastEntryEnd(uint64_t data_end) const {
  if (tail_ahead_) tail_ahead_->Start(data_end);
}

void GzipSource::FinishNearlyDone(std::chrono::milliseconds budget) const {
  if (!pass_ || !pass_->started()) return;
  const bool saving = progress_.complete();
  const std::shared_ptr<const GzipTail> tail = tail_ahead_ ? tail_ahead_->Get() : nullptr;
  const bool near = tail && tail->total() - std::min(tail->total(), progress_.produced()) <= kNearlyDoneBytes;
  if (!saving && !near) return;
  const auto start = std::chrono::steady_clock::now();
  const bool ended = progress_.WaitUntilFinishedFor(budget);
  spdlog::info("gzip pass over {}: {} at unmount ({:.2f} s)", compressed_->Describe(),
               ended ? "let finish" : "still running after the wait; cancelled",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

Result<size_t> GzipSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (buf.empty()) return size_t{0};
  if (follower_ && !progress_.complete()) {
    if (std::optional<size_t> served = ReadBehindOtherPass(offset, buf)) return *served;
  }
  uint64_t end = offset + std::min<uint64_t>(buf.size(), UINT64_MAX - offset);
  // Ahead of the pass: the layer's end, decoded ahead of it, may hold the bytes.
  if (tail_ahead_) {
    OCIFS_ASSIGN_OR_RETURN(std::optional<size_t> served, tail_ahead_->ServeAhead(offset, buf));
    if (served) return *served;
  }
  OCIFS_ASSIGN_OR_RETURN(const PassProgress::Produced produced, progress_.WaitFor(end));
  end = std::min(end, produced.bytes);  // produced.bytes is the size once complete
  if (end <= offset) return size_t{0};
  const std::span<uint8_t> out = buf.first(static_cast<size_t>(end - offset));
  OCIFS_RETURN_IF_ERROR(checks_ ? ReadVerified(offset, end, produced, out) : ReadSpans(offset, end, produced, out));
  return out.size();
}

Status GzipSource::ReadVerified(uint64_t from, uint64_t to, const PassProgress::Produced& produced,
                                std::span<uint8_t> out) const {
  // Blocks a read verifies here are those its spans' inflates could not
  // (shared by two spans) or did not (served as zeros): while zero runs are
  // learnt, theirs are learnt here, so runs are not cut at span edges.
  BlockChecksums::OnVerified learn;
  if (v1_zeros_.active()) learn = [this](uint64_t at, std::span<const uint8_t> block) { zeros_.AddFrom(at, block); };
  const auto [wide_from, wide_to] = checks_->Widen(from, to);
  if (wide_from == from && wide_to == to) {
    OCIFS_RETURN_IF_ERROR(ReadSpans(from, to, produced, out));
    return checks_->Check(from, out, learn);
  }
  // An edge block not verified yet: read all of it, check it, return the part asked for.
  std::vector<uint8_t> wide(static_cast<size_t>(wide_to - wide_from));
  OCIFS_RETURN_IF_ERROR(ReadSpans(wide_from, wide_to, produced, wide, {from, to}));
  OCIFS_RETURN_IF_ERROR(checks_->Check(wide_from, wide, learn));
  std::copy_n(wide.begin() + static_cast<ptrdiff_t>(from - wide_from), out.size(), out.begin());
  return Status::Ok();
}

Status GzipSource::ReadSpans(uint64_t offset, uint64_t end, const PassProgress::Produced& produced,
                             std::span<uint8_t> buf, std::pair<uint64_t, uint64_t> asked) const {
  std::vector<Piece> pieces;
  checkpoints_.ForEachSpan(offset, end, produced.bytes, [&](const GzipCheckpoints::Span& span) {
    pieces.push_back(MakePiece(span, offset, end, produced.complete));
  });
  std::erase_if(pieces, [&](const Piece& p) {
    return ServeWithoutInflating(p, produced.complete,
                                 buf.subspan(static_cast<size_t>(p.from - offset), static_cast<size_t>(p.to - p.from)));
  });
  // The spans of one read inflate side by side (each from its own checkpoint).
  std::vector<SegmentCache::Buffer> spans(pieces.size());
  OCIFS_RETURN_IF_ERROR(scheduler_->decode_pool().ParallelFor(pieces.size(), [&](size_t k) -> Status {
    OCIFS_ASSIGN_OR_RETURN(spans[k], Segment(pieces[k]));
    return Status::Ok();
  }));
  for (size_t k = 0; k < pieces.size(); ++k) {
    const Piece& p = pieces[k];
    std::copy(spans[k]->begin() + static_cast<ptrdiff_t>(p.from - p.span.out),
              spans[k]->begin() + static_cast<ptrdiff_t>(p.need), buf.begin() + static_cast<ptrdiff_t>(p.from - offset));
  }
  if (options_.record_compressed) RecordNeeded(pieces, asked.second > asked.first ? asked : std::pair{offset, end});
  return Status::Ok();
}

void GzipSource::RecordNeeded(const std::vector<Piece>& pieces, std::pair<uint64_t, uint64_t> asked) const {
  for (const Piece& p : pieces) {
    // What the reader asked for, not the rest of the blocks read to verify
    // them (a mount with another index widens to its own blocks); but a span
    // read only to verify a block (one the read's bytes share with it) is
    // recorded, so that a mount with this index prefetches it too.
    uint64_t from = std::max(p.from, asked.first), to = std::min(p.to, asked.second);
    if (from >= to) from = p.from, to = p.to;
    const uint64_t a = (from - p.span.out) / kInputMarkBytes;
    const uint64_t b = (to - p.span.out + kInputMarkBytes - 1) / kInputMarkBytes;
    std::pair<uint64_t, uint64_t> range{0, 0};
    {
      std::lock_guard lock(marks_mu_);
      if (auto it = marks_.find(p.span.index); it != marks_.end() && !it->second.empty()) {
        const std::vector<uint64_t>& m = it->second;
        range = {m[std::min<uint64_t>(a, m.size() - 1)], m[std::min<uint64_t>(b, m.size() - 1)]};
      }
    }
    // Not inflated here (copied from a pass's output): the whole span.
    if (range.second <= range.first) range = checkpoints_.CompressedRange(from, to, compressed_->size());
    if (range.second > range.first && range.second != kUnknownSize) {
      options_.record_compressed(range.first, range.second - range.first);
    }
  }
}

}  // namespace ocifs
