#include "decode/zstd_frame_source.h"
#include "base/crc32.h"

#include <algorithm>

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
    ZstdDCtxPtr dctx(ZSTD_createDCtx());
    if (!dctx) return Internal("ZSTD_createDCtx failed");
    auto out = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(f.out_size));
    size_t n = ZSTD_decompressDCtx(dctx.get(), out->data(), out->size(), in.data(), in.size());
    if (ZSTD_isError(n)) {
      if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) return corrupt("more data than the frame table says");
      return corrupt(ZSTD_getErrorName(n));
    }
    if (n != f.out_size) {
      return corrupt("decompressed to " + std::to_string(n) + " bytes, the frame table says " +
                     std::to_string(f.out_size));
    }
    if (f.crc32 && Crc32(*out) != *f.crc32) {
      return DataLoss("zstd frame table of " + compressed_->Describe() + " is wrong: frame " + std::to_string(index) +
                      "'s decoded bytes do not match its CRC-32");
    }
    if (check_) OCIFS_RETURN_IF_ERROR(check_(index, *out));
    return SegmentCache::Buffer(std::move(out));
  });
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
  }
  return static_cast<size_t>(end - offset);
}

}  // namespace ocifs
