#include "decode/gzip_source.h"

#include <algorithm>
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

}  // namespace

Result<std::shared_ptr<GzipSource>> GzipSource::Open(ByteSourcePtr compressed, const DecoderOptions& options) {
  if (!compressed) return InvalidArgument("gzip decoder: no compressed source");
  std::optional<GzipIndex> index = LoadGzipIndexFor(*compressed, options.index_path);
  std::shared_ptr<GzipSource> source(new GzipSource(std::move(compressed), options, std::move(index)));
  if (source->pass_ && options.background_pass) source->pass_->Start();
  return source;
}

GzipSource::GzipSource(ByteSourcePtr compressed, const DecoderOptions& options, std::optional<GzipIndex> index)
    : compressed_(std::move(compressed)),
      options_(BoundedSpacing(options, compressed_->size())),
      scheduler_(options.scheduler ? options.scheduler : Scheduler::Shared()),
      cache_(options.segment_cache_bytes,
             static_cast<size_t>(std::max<uint64_t>(
                 2, options_.segment_cache_bytes / std::max<uint64_t>(options_.checkpoint_spacing, 1)))),
      progress_("gzip pass over " + compressed_->Describe()) {
  if (!index) {
    pass_ = std::make_unique<GzipFirstPass>(GzipFirstPass::Target{
        *compressed_, options_, checkpoints_, progress_, zeros_, cache_});
    return;
  }
  for (const auto& [start, end] : index->zero_runs) zeros_.Add(start, end);
  if (!index->zero_runs_known) v1_zeros_.Start(index->checkpoints.size());
  checkpoints_.Reset(std::move(index->checkpoints));
  progress_.Complete(index->decompressed_size);
  progress_.Finish();
}

Result<SegmentCache::Buffer> GzipSource::Segment(const Piece& p) const {
  const size_t load = p.load == SpanLoad::kWhole ? static_cast<size_t>(p.span.end - p.span.out) : p.need;
  return cache_.GetOrLoad(p.span.index, p.need, [&]() -> Result<SegmentCache::Buffer> {
    // Copied (its window may be in memory) only when it is needed.
    const GzipCheckpoint checkpoint = checkpoints_.At(p.span.index);
    OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, InflateFromCheckpoint(*compressed_, checkpoint, load,
                                                                             p.span.compressed_hint, Describe()));
    if (bytes.size() < load) {
      return Corrupt("gzip data of " + compressed_->Describe() + " ends at decompressed offset " +
                     std::to_string(p.span.out + bytes.size()) + ", before its index says (" +
                     std::to_string(p.span.out + load) + ")");
    }
    if (p.load == SpanLoad::kWhole) v1_zeros_.Learn(p.span.index, p.span.out, bytes);
    return std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  });
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
  // Once complete, the pass holds no open span.
  return pass_ && !complete && pass_->CopyFromOpenSpan(p.span.index, p.from - p.span.out, out);
}

Result<size_t> GzipSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (buf.empty()) return size_t{0};
  uint64_t end = offset + std::min<uint64_t>(buf.size(), UINT64_MAX - offset);
  OCIFS_ASSIGN_OR_RETURN(const PassProgress::Produced produced, progress_.WaitFor(end));
  end = std::min(end, produced.bytes);  // produced.bytes is the size once complete
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
  return static_cast<size_t>(std::max(end, offset) - offset);
}

}  // namespace ocifs
