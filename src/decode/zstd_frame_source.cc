#include "decode/zstd_frame_source.h"
#include "base/crc32.h"

#include <algorithm>
#include <tuple>

#include "base/worker_pool.h"
#include "decode/gzip_inflate.h"
#include "decode/zstd_util.h"

#include <zstd_errors.h>

namespace ocifs {

ZstdFrameSource::ZstdFrameSource(ByteSourcePtr compressed, std::vector<ZstdFrame> frames, uint64_t cache_bytes,
                                 std::shared_ptr<Scheduler> scheduler, FrameCheck check, FrameCodec codec)
    : compressed_(std::move(compressed)),
      frames_(std::move(frames)),
      size_(frames_.empty() ? 0 : frames_.back().out_offset + frames_.back().out_size),
      cache_(cache_bytes, 4),
      scheduler_(scheduler ? std::move(scheduler) : Scheduler::Shared()),
      check_(std::move(check)),
      codec_(codec) {}

Result<SegmentCache::Buffer> ZstdFrameSource::DecodeFrame(size_t index) const {
  const ZstdFrame& f = frames_[index];
  return cache_.GetOrLoad(index, static_cast<size_t>(f.out_size), [&]() -> Result<SegmentCache::Buffer> {
    auto corrupt = [&](const std::string& why) {
      return Corrupt((codec_ == FrameCodec::kGzip ? "gzip frame " : "zstd frame ") + std::to_string(index) + " of " + compressed_->Describe() +
                     " corrupt at compressed offset " + std::to_string(f.in_offset) + ": " + why);
    };
    std::vector<uint8_t> in(static_cast<size_t>(f.in_size));
    OCIFS_RETURN_IF_ERROR(ReadExactly(*compressed_, f.in_offset, in));
    if (codec_ == FrameCodec::kGzip) {
      auto inflated = InflateGzipMembers(in, f.out_size, "gzip members");
      if (!inflated.ok()) return corrupt(inflated.status().message());
      if (inflated->size() != f.out_size) {
        return corrupt("decompressed to " + std::to_string(inflated->size()) + " bytes, the frame table says " +
                       std::to_string(f.out_size));
      }
      auto out = std::make_shared<std::vector<uint8_t>>(std::move(*inflated));
      if (check_) OCIFS_RETURN_IF_ERROR(check_(index, *out));
      return SegmentCache::Buffer(std::move(out));
    }
    auto out = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(f.out_size));
    if (record_) {
      std::vector<uint64_t> marks;
      OCIFS_RETURN_IF_ERROR(DecodeMarked(f, in, *out, marks));
      std::lock_guard lock(marks_mu_);
      marks_[index] = std::move(marks);
    } else {
      ZstdDCtxPtr dctx(ZSTD_createDCtx());
      if (!dctx) return Internal("ZSTD_createDCtx failed");
      size_t n = ZSTD_decompressDCtx(dctx.get(), out->data(), out->size(), in.data(), in.size());
      if (ZSTD_isError(n)) {
        if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) return corrupt("more data than the frame table says");
        return corrupt(ZSTD_getErrorName(n));
      }
      if (n != f.out_size) {
        return corrupt("decompressed to " + std::to_string(n) + " bytes, the frame table says " +
                       std::to_string(f.out_size));
      }
    }
    if (f.crc32 && Crc32(*out) != *f.crc32) {
      return DataLoss("zstd frame table of " + compressed_->Describe() + " is wrong: frame " + std::to_string(index) +
                      "'s decoded bytes do not match its CRC-32");
    }
    if (check_) OCIFS_RETURN_IF_ERROR(check_(index, *out));
    return SegmentCache::Buffer(std::move(out));
  });
}

Status ZstdFrameSource::DecodeMarked(const ZstdFrame& f, std::span<const uint8_t> in, std::span<uint8_t> out,
                                     std::vector<uint64_t>& marks) const {
  auto corrupt = [&](const std::string& why) {
    return Corrupt("zstd frame of " + compressed_->Describe() + " corrupt at compressed offset " +
                   std::to_string(f.in_offset) + ": " + why);
  };
  ZstdDCtxPtr dctx(ZSTD_createDCtx());
  if (!dctx) return Internal("ZSTD_createDCtx failed");
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  ZSTD_outBuffer output{out.data(), 0, 0};
  marks.push_back(f.in_offset);
  size_t left = 1;  // ZSTD_decompressStream's hint: 0 once the frame is whole
  while (output.pos < out.size()) {
    output.size = std::min<size_t>(out.size(), (output.pos / kNeededMarkBytes + 1) * kNeededMarkBytes);
    const size_t before_in = input.pos, before_out = output.pos;
    left = ZSTD_decompressStream(dctx.get(), &output, &input);
    if (ZSTD_isError(left)) return corrupt(ZSTD_getErrorName(left));
    // Each step ends at the next multiple of kNeededMarkBytes at most: one mark per multiple reached.
    if (output.pos > before_out && (output.pos % kNeededMarkBytes == 0 || output.pos == out.size())) {
      marks.push_back(f.in_offset + input.pos);
    }
    if (left == 0 && output.pos < out.size()) {
      return corrupt("decompressed to " + std::to_string(output.pos) + " bytes, the frame table says " +
                     std::to_string(out.size()));
    }
    if (input.pos == before_in && output.pos == before_out) return corrupt("truncated");
  }
  if (left != 0) {
    // All the table's bytes are out: the frame must end here, with no more output.
    uint8_t extra = 0;
    ZSTD_outBuffer probe{&extra, 1, 0};
    left = ZSTD_decompressStream(dctx.get(), &probe, &input);
    if (ZSTD_isError(left)) return corrupt(ZSTD_getErrorName(left));
    if (probe.pos > 0) return corrupt("more data than the frame table says");
    if (left != 0) return corrupt("truncated");
  }
  return Status::Ok();
}

std::pair<uint64_t, uint64_t> NeededWithinSpan(uint64_t first, uint64_t last, uint64_t own_first, uint64_t own_last,
                                               uint64_t unit) {
  if (unit == 0) return {first, last};
  const uint64_t inner_first = (own_first + unit - 1) / unit * unit, inner_last = own_last / unit * unit;
  const uint64_t a = std::max(first, inner_first), b = std::min(last, inner_last);
  if (a < b) return {a, b};
  // The needed bytes lie in edge units only: the inner unit nearest them.
  if (inner_first < inner_last) return first >= inner_last ? std::pair{inner_last - 1, inner_last}
                                                            : std::pair{inner_first, inner_first + 1};
  return {first, last};
}

void ZstdFrameSource::RecordNeeded(std::function<void(uint64_t offset, uint64_t length)> record, uint64_t unit) {
  record_unit_ = unit;
  record_ = std::move(record);
  if (record_) record_(0, 0);
}

std::vector<std::pair<uint64_t, uint64_t>> ZstdFrameSource::FrameSpans() const {
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  spans.reserve(frames_.size());
  for (const ZstdFrame& f : frames_) spans.emplace_back(f.in_offset, f.in_offset + f.in_size);
  return spans;
}

void ZstdFrameSource::ReportNeeded(size_t index, uint64_t from, uint64_t to) const {
  const ZstdFrame& f = frames_[index];
  uint64_t first = f.in_offset, last = f.in_offset + f.in_size;  // not decoded here (a gzip frame): all of it
  {
    std::lock_guard lock(marks_mu_);
    if (auto it = marks_.find(index); it != marks_.end() && !it->second.empty()) {
      const std::vector<uint64_t>& m = it->second;
      const uint64_t a = from / kNeededMarkBytes, b = (to + kNeededMarkBytes - 1) / kNeededMarkBytes;
      first = m[std::min<uint64_t>(a < 2 ? 0 : a - 2, m.size() - 1)];
      last = m[std::min<uint64_t>(b, m.size() - 1)];
    }
  }
  std::tie(first, last) = NeededWithinSpan(first, last, f.in_offset, f.in_offset + f.in_size, record_unit_);
  if (last > first) record_(first, last - first);
}

void ZstdFrameSource::Prefetch(uint64_t offset, uint64_t length) const {
  if (offset >= size_ || length == 0) return;
  const uint64_t end = offset + std::min(length, size_ - offset);
  auto it = std::upper_bound(frames_.begin(), frames_.end(), offset,
                             [](uint64_t p, const ZstdFrame& f) { return p < f.out_offset; });
  size_t i = static_cast<size_t>(it - frames_.begin()) - 1;
  const uint64_t in_start = frames_[i].in_offset;
  uint64_t in_end = in_start;
  for (; i < frames_.size() && frames_[i].out_offset < end; ++i) in_end = frames_[i].in_offset + frames_[i].in_size;
  compressed_->Prefetch(in_start, in_end - in_start);
}

Result<size_t> ZstdFrameSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (offset >= size_ || buf.empty()) return size_t{0};
  const uint64_t end = offset + std::min<uint64_t>(buf.size(), size_ - offset);
  auto it = std::upper_bound(frames_.begin(), frames_.end(), offset,
                             [](uint64_t p, const ZstdFrame& f) { return p < f.out_offset; });
  const size_t first = static_cast<size_t>(it - frames_.begin()) - 1;
  size_t last = first;  // frames [first, last] hold the read (empty frames included)
  while (last + 1 < frames_.size() && frames_[last + 1].out_offset < end) ++last;
  // The frames of one read decode side by side.
  std::vector<SegmentCache::Buffer> decoded(last - first + 1);
  OCIFS_RETURN_IF_ERROR(scheduler_->decode_pool().ParallelFor(decoded.size(), [&](size_t k) -> Status {
    if (frames_[first + k].out_size == 0) return Status::Ok();
    OCIFS_ASSIGN_OR_RETURN(decoded[k], DecodeFrame(first + k));
    return Status::Ok();
  }));
  for (size_t k = 0; k < decoded.size(); ++k) {
    const ZstdFrame& f = frames_[first + k];
    const uint64_t from = std::max(offset, f.out_offset);
    const uint64_t to = std::min(end, f.out_offset + f.out_size);
    if (to <= from) continue;
    std::copy(decoded[k]->begin() + static_cast<ptrdiff_t>(from - f.out_offset),
              decoded[k]->begin() + static_cast<ptrdiff_t>(to - f.out_offset),
              buf.begin() + static_cast<ptrdiff_t>(from - offset));
    if (record_) ReportNeeded(first + k, from - f.out_offset, to - f.out_offset);
  }
  return static_cast<size_t>(end - offset);
}

}  // namespace ocifs
