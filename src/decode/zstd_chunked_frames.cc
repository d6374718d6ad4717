#include "decode/zstd_chunked_frames.h"

#include <zstd.h>

#include <algorithm>

#include "base/little_endian.h"
#include "decode/zstd_util.h"

namespace ocifs {
namespace {

constexpr uint32_t kSkippableMask = 0xFFFFFFF0;
constexpr uint32_t kSkippableStart = 0x184D2A50;

// Bytes `frame` (one whole zstd frame) decodes to; kCorrupt past `max_out`.
Result<uint64_t> DecodedSize(ZSTD_DCtx* dctx, std::span<const uint8_t> frame, uint64_t max_out) {
  ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
  std::vector<uint8_t> scratch(128 << 10);
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  uint64_t total = 0;
  for (;;) {
    ZSTD_outBuffer out{scratch.data(), scratch.size(), 0};
    const size_t before = in.pos;
    size_t ret = ZSTD_decompressStream(dctx, &out, &in);
    if (ZSTD_isError(ret)) return Corrupt(ZSTD_getErrorName(ret));
    total += out.pos;
    if (total > max_out) return Corrupt("decodes to more than " + std::to_string(max_out) + " bytes");
    if (ret == 0) return total;
    if (in.pos == before && out.pos == 0) return Corrupt("truncated frame");
  }
}

// Appends the frames of blob[begin, end), a gap between spans, to `out`.
Status WalkGap(const ByteSource& blob, uint64_t begin, uint64_t end, uint64_t max_frame_out, std::string_view name,
               ZSTD_DCtx* dctx, ZstdChunkedFrames& out) {
  auto bad = [&](uint64_t at, const std::string& why) {
    return Corrupt(std::string(name) + ": zstd:chunked: the bytes between the TOC's payloads at compressed offset " +
                   std::to_string(at) + ": " + why);
  };
  if (end - begin > kMaxZstdChunkedGapBytes) {
    return bad(begin, std::to_string(end - begin) + " bytes the TOC does not describe");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(end - begin));
  OCIFS_RETURN_IF_ERROR(ReadExactly(blob, begin, bytes));
  size_t pos = 0;
  uint64_t out_offset = out.frames.empty() ? 0 : out.frames.back().out_offset + out.frames.back().out_size;
  while (pos < bytes.size()) {
    std::span<const uint8_t> rest(bytes.data() + pos, bytes.size() - pos);
    size_t n = ZSTD_findFrameCompressedSize(rest.data(), rest.size());
    if (ZSTD_isError(n) || n == 0 || n > rest.size()) {
      return bad(begin + pos, "not whole zstd frames up to the next payload (" +
                                  std::string(ZSTD_isError(n) ? ZSTD_getErrorName(n) : "empty frame") + ")");
    }
    const uint32_t magic = rest.size() >= 4 ? LoadLe<uint32_t>(rest.data()) : 0;
    if ((magic & kSkippableMask) != kSkippableStart) {
      auto size = DecodedSize(dctx, rest.first(n), max_frame_out);
      if (!size.ok()) return bad(begin + pos, size.status().message());
      if (*size > 0) {
        out.frames.push_back(ZstdFrame{begin + pos, n, out_offset, *size});
        out.digests.emplace_back();
        out_offset += *size;
      }
    }
    pos += n;
  }
  return Status::Ok();
}

}  // namespace

Result<ZstdChunkedFrames> BuildZstdChunkedFrames(const ByteSource& blob, const ZstdChunkedToc& toc,
                                                 uint64_t max_frame_out, std::string_view name) {
  if (blob.size() == ByteSource::kUnknownSize || toc.data_end > blob.size()) {
    return Corrupt(std::string(name) + ": zstd:chunked: the TOC describes more than the blob");
  }
  // The gaps, in order: before each span, then up to the TOC.
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  uint64_t cursor = 0;
  for (const ZstdChunkedSpan& s : toc.spans) {
    if (s.in_offset > cursor) gaps.emplace_back(cursor, s.in_offset);
    cursor = s.in_offset + s.in_size;
  }
  if (toc.data_end > cursor) gaps.emplace_back(cursor, toc.data_end);
  for (const auto& [b, e] : gaps) blob.Prefetch(b, e - b);

  ZstdDCtxPtr dctx(ZSTD_createDCtx());
  if (!dctx) return Internal("ZSTD_createDCtx failed");
  ZstdChunkedFrames out;
  out.frames.reserve(toc.spans.size() + gaps.size());
  out.digests.reserve(toc.spans.size() + gaps.size());
  cursor = 0;
  size_t gap = 0;
  for (const ZstdChunkedSpan& s : toc.spans) {
    if (s.in_size > max_frame_out || s.out_size > max_frame_out) {
      return Corrupt(std::string(name) + ": zstd:chunked: the payload at compressed offset " +
                     std::to_string(s.in_offset) + " decodes to " + std::to_string(s.out_size) +
                     " bytes, more than the " + std::to_string(max_frame_out) + " a frame may hold here");
    }
    if (s.in_offset > cursor) {
      OCIFS_RETURN_IF_ERROR(WalkGap(blob, gaps[gap].first, gaps[gap].second, max_frame_out, name, dctx.get(), out));
      ++gap;
    }
    const uint64_t out_offset = out.frames.empty() ? 0 : out.frames.back().out_offset + out.frames.back().out_size;
    out.frames.push_back(ZstdFrame{s.in_offset, s.in_size, out_offset, s.out_size});
    out.digests.push_back(s.digest);
    cursor = s.in_offset + s.in_size;
  }
  if (gap < gaps.size()) {
    OCIFS_RETURN_IF_ERROR(WalkGap(blob, gaps[gap].first, gaps[gap].second, max_frame_out, name, dctx.get(), out));
  }
  return out;
}

Result<ZstdChunkedFrames> MatchZstdChunkedFrames(std::vector<ZstdFrame> frames, const ZstdChunkedToc& toc,
                                                 std::string_view name) {
  ZstdChunkedFrames out;
  out.digests.assign(frames.size(), std::string());
  for (const ZstdChunkedSpan& s : toc.spans) {
    auto it = std::lower_bound(frames.begin(), frames.end(), s.in_offset,
                               [](const ZstdFrame& f, uint64_t at) { return f.in_offset < at; });
    if (it == frames.end() || it->in_offset != s.in_offset || it->in_size != s.in_size || it->out_size != s.out_size) {
      return Corrupt(std::string(name) + ": the saved frame table does not match the TOC at compressed offset " +
                     std::to_string(s.in_offset));
    }
    out.digests[static_cast<size_t>(it - frames.begin())] = s.digest;
  }
  out.frames = std::move(frames);
  return out;
}

}  // namespace ocifs
