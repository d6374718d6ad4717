#define ZSTD_STATIC_LINKING_ONLY  // the buffer-less API: ZSTD_decompressContinue
#include "decode/zstd_frame_source.h"

#include <zstd.h>

#include "base/byte_buffer_pool.h"
#include "base/crc32.h"

#include <algorithm>
#include <tuple>

#include "base/worker_pool.h"
#include "decode/gzip_inflate.h"
#include "decode/sequential_reader.h"
#include "decode/zstd_util.h"

#include <spdlog/spdlog.h>
#include <zstd_errors.h>

namespace ocifs {

ZstdFrameSource::ZstdFrameSource(ByteSourcePtr compressed, std::vector<ZstdFrame> frames, uint64_t cache_bytes,
                                 std::shared_ptr<Scheduler> scheduler, FrameCheck check, FrameCodec codec)
    : compressed_(std::move(compressed)),
      frames_(std::move(frames)),
      size_(frames_.empty() ? 0 : frames_.back().out_offset + frames_.back().out_size),
      cache_(cache_bytes, 4),
      buffers_(ByteBufferPool::Make(std::max<uint64_t>(cache_bytes / 2, kMinPooledBytes))),
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
    // Pooled: a frame's input and output are MiBs, and fresh ones cost more to zero and fault in than to decode.
    ByteBufferPool::Buffer in_buffer = buffers_->Take(static_cast<size_t>(f.in_size));
    std::span<uint8_t> in(*in_buffer);
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
    ByteBufferPool::Buffer out = buffers_->Take(static_cast<size_t>(f.out_size));
    if (record_) {
      std::vector<BlockStart> blocks;
      OCIFS_RETURN_IF_ERROR(DecodeMarked(f, in, *out, blocks));
      std::lock_guard lock(blocks_mu_);
      blocks_[index] = std::move(blocks);
    } else {
      thread_local ZstdDCtxPtr dctx(ZSTD_createDCtx());  // a decoder's workspace, reused by this thread
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
                                     std::vector<BlockStart>& blocks) const {
  auto corrupt = [&](const std::string& why) {
    return Corrupt("zstd frame of " + compressed_->Describe() + " corrupt at compressed offset " +
                   std::to_string(f.in_offset) + ": " + why);
  };
  // The buffer-less API takes the frame a header or a block at a time, in
  // the exact sizes it asks for, and writes each block next to the previous
  // one: where each block's input starts and its output begins is exact.
  ZstdDCtxPtr dctx(ZSTD_createDCtx());
  if (!dctx) return Internal("ZSTD_createDCtx failed");
  if (ZSTD_isError(ZSTD_decompressBegin(dctx.get()))) return Internal("ZSTD_decompressBegin failed");
  size_t in_pos = 0, out_pos = 0;
  for (size_t next = ZSTD_nextSrcSizeToDecompress(dctx.get()); next != 0;
       next = ZSTD_nextSrcSizeToDecompress(dctx.get())) {
    if (next > in.size() - in_pos) return corrupt("truncated");
    if (ZSTD_nextInputType(dctx.get()) == ZSTDnit_blockHeader) {
      blocks.push_back({out_pos, f.in_offset + in_pos, ((in[in_pos] >> 1) & 3) == 0});
    }
    const size_t n = ZSTD_decompressContinue(dctx.get(), out.data() + out_pos, out.size() - out_pos,
                                             in.data() + in_pos, next);
    if (ZSTD_isError(n)) {
      if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) return corrupt("more data than the frame table says");
      return corrupt(ZSTD_getErrorName(n));
    }
    in_pos += next;
    out_pos += n;
  }
  if (out_pos != out.size()) {
    return corrupt("decompressed to " + std::to_string(out_pos) + " bytes, the frame table says " +
                   std::to_string(out.size()));
  }
  if (in_pos != in.size()) return corrupt("more data than the frame table says");
  blocks.push_back({out_pos, f.in_offset + in_pos});  // the end
  return Status::Ok();
}

void ZstdFrameSource::StartFill(uint64_t read_ahead) {
  if (fill_) return;
  fill_ = std::make_unique<BackgroundPass>(scheduler_, "fill of " + compressed_->Describe(), [this, read_ahead] {
    const auto started = std::chrono::steady_clock::now();
    SequentialReader reader(*compressed_, 0, kFillPiece, read_ahead);
    while (!fill_->cancelled().load(std::memory_order_relaxed)) {
      Result<std::span<const uint8_t>> piece = reader.Next();
      if (!piece.ok()) {
        // Reads fetch their own frames; a failing registry fails them, not this hint.
        spdlog::debug("fill of {} stopped at {}: {}", compressed_->Describe(), reader.position(),
                      piece.status().ToString());
        return;
      }
      if (piece->empty()) break;
      reader.Skip(piece->size());
    }
    LogStreamPass("fill of " + compressed_->Describe(), reader.bytes_read(), reader.read_time(), started);
  });
  fill_->Start();
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
    std::lock_guard lock(blocks_mu_);
    if (auto it = blocks_.find(index); it != blocks_.end() && it->second.size() >= 2) {
      const std::vector<BlockStart>& b = it->second;  // by output, the last one the frame's end
      // From the block holding `from` to the end of the one holding to - 1;
      // in a raw block, from and to the read's own bytes (after its header).
      auto holding = [&](uint64_t out) {
        auto k = std::upper_bound(b.begin(), b.end(), out, [](uint64_t o, const BlockStart& s) { return o < s.out; });
        return static_cast<size_t>(std::max<ptrdiff_t>(0, (k - b.begin()) - 1));
      };
      const size_t kf = std::min(holding(from), b.size() - 2), kl = std::min(holding(to - 1), b.size() - 2);
      first = b[kf].raw ? b[kf].in + 3 + (from - b[kf].out) : b[kf].in;
      last = b[kl].raw ? b[kl].in + 3 + (to - b[kl].out) : b[kl + 1].in;
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
