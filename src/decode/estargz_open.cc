#include "decode/estargz_open.h"

#include <spdlog/spdlog.h>
#include <zstd.h>

#include "decode/estargz_toc.h"
#include "decode/gzip_inflate.h"
#include "decode/toc_support.h"
#include "decode/zstd_frame_source.h"
#include "decode/zstd_util.h"

namespace ocifs {
namespace {

// The frames of the whole layer and what the TOC vouches for in each.
struct EstargzFrames {
  std::vector<ZstdFrame> frames;
  std::vector<TocFrameDigest> digests;

  void Add(uint64_t in_offset, uint64_t in_size, uint64_t out_size, TocFrameDigest digest) {
    if (out_size == 0) return;  // ZstdFrameSource takes no empty frames
    const uint64_t out_offset = frames.empty() ? 0 : frames.back().out_offset + frames.back().out_size;
    frames.push_back(ZstdFrame{in_offset, in_size, out_offset, out_size});
    digests.push_back(std::move(digest));
  }
};

// Bytes `in` (whole zstd frames, skippable ones included) decode to; kCorrupt past `max_out`.
Result<uint64_t> ZstdDecodedSize(std::span<const uint8_t> in, uint64_t max_out) {
  ZstdDCtxPtr dctx(ZSTD_createDCtx());
  if (!dctx) return Internal("ZSTD_createDCtx failed");
  std::vector<uint8_t> scratch(128 << 10);
  ZSTD_inBuffer b{in.data(), in.size(), 0};
  uint64_t total = 0;
  size_t ret = 0;
  while (b.pos < b.size || ret != 0) {
    ZSTD_outBuffer out{scratch.data(), scratch.size(), 0};
    const size_t before = b.pos;
    ret = ZSTD_decompressStream(dctx.get(), &out, &b);
    if (ZSTD_isError(ret)) return Corrupt(std::string("not whole zstd frames up to the next chunk: ") +
                                          ZSTD_getErrorName(ret));
    total += out.pos;
    if (total > max_out) return Corrupt("decodes to more than " + std::to_string(max_out) + " bytes");
    if (b.pos == before && out.pos == 0) return Corrupt("not whole zstd frames up to the next chunk (truncated)");
  }
  return total;
}

// Bytes blob[begin, end) (whole gzip members or zstd frames) decode to; kCorrupt naming the layer.
Result<uint64_t> WalkUnits(const ByteSource& blob, uint64_t begin, uint64_t end, FrameCodec codec, uint64_t max_frame,
                           const std::string& name) {
  const char* units = codec == FrameCodec::kGzip ? "gzip members" : "zstd frames";
  auto bad = [&](const std::string& why) {
    return Corrupt(name + ": the " + units + " at compressed offset " + std::to_string(begin) + ": " + why);
  };
  if (end - begin > max_frame) return bad(std::to_string(end - begin) + " bytes, too many to walk");
  std::vector<uint8_t> bytes(static_cast<size_t>(end - begin));
  OCIFS_RETURN_IF_ERROR(ReadExactly(blob, begin, bytes));
  if (codec == FrameCodec::kZstd) {
    auto n = ZstdDecodedSize(bytes, max_frame);
    if (!n.ok()) return bad(n.status().message());
    return *n;
  }
  auto decoded = InflateGzipMembers(bytes, max_frame, "not whole gzip members up to the next chunk");
  if (!decoded.ok()) return bad(decoded.status().message());
  return decoded->size();
}

// The frame table from the TOC: a chunk that is not its file's last decodes to exactly its
// size; the units before the first chunk and from a file's last chunk on (which also hold
// tar padding and the next headers) are walked to learn their decoded size.
Result<EstargzFrames> BuildFrames(const ByteSource& blob, const EstargzToc& toc, FrameCodec codec, uint64_t max_frame,
                                  const std::string& name) {
  const uint64_t first = toc.chunks.empty() ? toc.toc_offset : toc.chunks.front().in_offset;
  auto end_of = [&](size_t k) { return k + 1 < toc.chunks.size() ? toc.chunks[k + 1].in_offset : toc.toc_offset; };
  if (first > 0) blob.Prefetch(0, first);
  for (size_t k = 0; k < toc.chunks.size(); ++k) {
    if (toc.chunks[k].last_of_file) blob.Prefetch(toc.chunks[k].in_offset, end_of(k) - toc.chunks[k].in_offset);
  }
  EstargzFrames out;
  if (first > 0) {
    OCIFS_ASSIGN_OR_RETURN(uint64_t n, WalkUnits(blob, 0, first, codec, max_frame, name));
    out.Add(0, first, n, {});
  }
  for (size_t k = 0; k < toc.chunks.size(); ++k) {
    const EstargzChunk& c = toc.chunks[k];
    const uint64_t in_size = end_of(k) - c.in_offset;
    if (c.size > max_frame || in_size > max_frame) {
      return Corrupt(name + ": the chunk at compressed offset " + std::to_string(c.in_offset) +
                     " is larger than the " + std::to_string(max_frame) + " bytes a frame may hold here");
    }
    uint64_t out_size = c.size;
    if (c.last_of_file) {
      OCIFS_ASSIGN_OR_RETURN(out_size, WalkUnits(blob, c.in_offset, end_of(k), codec, max_frame, name));
      if (out_size < c.size) {
        return Corrupt(name + ": the chunk at compressed offset " + std::to_string(c.in_offset) +
                       " decodes to " + std::to_string(out_size) + " bytes, fewer than its " +
                       std::to_string(c.size));
      }
    }
    out.Add(c.in_offset, in_size, out_size, TocFrameDigest{c.digest, c.size});
  }
  if (toc.toc_out_size > 0) {  // eStargz: the TOC's members, up to the footer
    out.Add(toc.toc_offset, blob.size() - kEstargzFooterSize - toc.toc_offset, toc.toc_out_size, {});
  }
  return out;
}

// Footer and TOC of the blob.
Result<EstargzToc> Load(const ByteSource& blob, const std::string& toc_digest, const std::string& name) {
  const uint64_t size = blob.size();
  if (size < kEstargzFooterSize) return Corrupt(name + ": eStargz: a blob of " + std::to_string(size) + " bytes");
  std::vector<uint8_t> footer(kEstargzFooterSize);
  OCIFS_RETURN_IF_ERROR(ReadExactly(blob, size - kEstargzFooterSize, footer));
  OCIFS_ASSIGN_OR_RETURN(uint64_t toc_offset, ParseEstargzFooter(footer, size, name));
  std::vector<uint8_t> members(static_cast<size_t>(size - kEstargzFooterSize - toc_offset));
  OCIFS_RETURN_IF_ERROR(ReadExactly(blob, toc_offset, members));
  return DecodeEstargzToc(members, toc_offset, toc_digest, name);
}

}  // namespace

Result<ByteSourcePtr> OpenEstargzLayout(const ByteSourcePtr& compressed, const EstargzToc& toc, FrameCodec codec,
                                        const DecoderOptions& options, uint64_t max_frame_bytes,
                                        const std::string& name) {
  OCIFS_ASSIGN_OR_RETURN(EstargzFrames frames, BuildFrames(*compressed, toc, codec, max_frame_bytes, name));
  spdlog::debug("{}: {} frames from its TOC", name, frames.frames.size());
  std::vector<uint64_t> in_offsets;
  for (const ZstdFrame& f : frames.frames) in_offsets.push_back(f.in_offset);
  auto check = TocDigestCheck(std::move(in_offsets), std::move(frames.digests), name);
  return ByteSourcePtr(std::make_shared<ZstdFrameSource>(compressed, std::move(frames.frames),
                                                         options.segment_cache_bytes, options.scheduler,
                                                         std::move(check), codec));
}

Result<std::optional<ByteSourcePtr>> OpenEstargz(const ByteSourcePtr& compressed, const DecoderOptions& options,
                                                 uint64_t max_frame_bytes) {
  std::optional<std::string> toc_digest = EstargzTocDigest(options.layer_annotations);
  if (!toc_digest || compressed->size() == ByteSource::kUnknownSize) return std::optional<ByteSourcePtr>();
  const std::string name = "eStargz layer " + compressed->Describe();
  auto toc = Load(*compressed, *toc_digest, name);
  auto source = toc.ok() ? OpenEstargzLayout(compressed, *toc, FrameCodec::kGzip, options, max_frame_bytes, name)
                         : Result<ByteSourcePtr>(toc.status());
  if (!source.ok()) {
    const Code code = source.status().code();
    if (code != Code::kCorrupt && code != Code::kUnsupported) return source.status();
    spdlog::warn("{}; reading the layer as a plain gzip stream instead", source.status().message());
    return std::optional<ByteSourcePtr>();
  }
  return std::optional<ByteSourcePtr>(std::move(*source));
}

}  // namespace ocifs
