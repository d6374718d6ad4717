#include "decode/zstd_frame_source.h"

#include <algorithm>

#include "decode/zstd_util.h"

#include <zstd_errors.h>

namespace ocifs {

ZstdFrameSource::ZstdFrameSource(ByteSourcePtr compressed, std::vector<ZstdFrame> frames, uint64_t cache_bytes)
    : compressed_(std::move(compressed)),
      frames_(std::move(frames)),
      size_(frames_.empty() ? 0 : frames_.back().out_offset + frames_.back().out_size),
      cache_(cache_bytes, 4) {}

Result<SegmentCache::Buffer> ZstdFrameSource::DecodeFrame(size_t index) const {
  const ZstdFrame& f = frames_[index];
  return cache_.GetOrLoad(index, static_cast<size_t>(f.out_size), [&]() -> Result<SegmentCache::Buffer> {
    auto corrupt = [&](const std::string& why) {
      return Corrupt("zstd frame " + std::to_string(index) + " of " + compressed_->Describe() +
                     " corrupt at compressed offset " + std::to_string(f.in_offset) + ": " + why);
    };
    std::vector<uint8_t> in(static_cast<size_t>(f.in_size));
    OCIFS_RETURN_IF_ERROR(ReadExactly(*compressed_, f.in_offset, in));
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
  uint64_t end = offset + std::min<uint64_t>(buf.size(), size_ - offset);
  uint64_t pos = offset;
  auto it = std::upper_bound(frames_.begin(), frames_.end(), pos,
                             [](uint64_t p, const ZstdFrame& f) { return p < f.out_offset; });
  size_t i = static_cast<size_t>(it - frames_.begin()) - 1;
  while (pos < end) {
    const ZstdFrame& f = frames_[i];
    uint64_t piece_end = std::min(end, f.out_offset + f.out_size);
    if (piece_end > pos) {
      OCIFS_ASSIGN_OR_RETURN(SegmentCache::Buffer bytes, DecodeFrame(i));
      std::copy(bytes->begin() + static_cast<ptrdiff_t>(pos - f.out_offset),
                bytes->begin() + static_cast<ptrdiff_t>(piece_end - f.out_offset),
                buf.begin() + static_cast<ptrdiff_t>(pos - offset));
      pos = piece_end;
    }
    ++i;
  }
  return static_cast<size_t>(end - offset);
}

}  // namespace ocifs
