#include "decode/zstd_chunked_open.h"

#include <spdlog/spdlog.h>

#include "base/whole_file.h"
#include "decode/estargz_open.h"
#include "decode/estargz_toc.h"
#include "decode/zstd_chunked_frames.h"
#include "decode/zstd_chunked_toc.h"
#include "decode/zstd_frame_file.h"
#include "decode/zstd_frame_source.h"

namespace ocifs {
namespace {

// A problem of the TOC (or of what it says about the blob), as opposed to one reaching the blob.
bool IsTocProblem(const Status& s) {
  return s.code() == Code::kCorrupt || s.code() == Code::kUnsupported || s.code() == Code::kDataLoss;
}

// The TOC's JSON from the saved copy if it is the one the annotations vouch for, else from the
// blob (then saved).
Result<std::string> LoadToc(const ByteSource& blob, const ZstdChunkedPosition& position, const std::string& path,
                            const std::string& name) {
  if (!path.empty()) {
    auto saved = ReadWholeFile(path, kMaxZstdChunkedTocBytes + 8, "zstd:chunked TOC");
    if (saved.ok()) {
      std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(saved->data()), saved->size());
      auto toc = DecompressZstdChunkedToc(bytes, position, name);
      if (toc.ok()) {
        spdlog::debug("{}: TOC loaded from {}", name, path);
        return toc;
      }
      spdlog::warn("{}: ignoring the saved TOC {}: {}", name, path, toc.status().message());
    } else if (saved.status().code() != Code::kNotFound) {
      spdlog::warn("{}: ignoring the saved TOC {}: {}", name, path, saved.status().message());
    }
  }
  std::vector<uint8_t> framed(static_cast<size_t>(position.length + 8));
  OCIFS_RETURN_IF_ERROR(ReadExactly(blob, position.offset - 8, framed));
  OCIFS_ASSIGN_OR_RETURN(std::string toc, DecompressZstdChunkedToc(framed, position, name));
  if (!path.empty()) {
    Status st = WriteFileAtomically(path, std::string_view(reinterpret_cast<const char*>(framed.data()), framed.size()));
    if (!st.ok()) spdlog::warn("{}: cannot save its TOC: {}", name, st.ToString());
  }
  return toc;
}

// The frame table from the saved copy if it matches the TOC, else built from the blob's gaps (then saved).
Result<ZstdChunkedFrames> LoadFrames(const ByteSource& blob, const ZstdChunkedToc& toc, const std::string& path,
                                     uint64_t max_frame, const std::string& name) {
  if (!path.empty()) {
    auto saved = ZstdFrameFile::Read(path, blob.size());
    if (saved.ok()) {
      bool fits = true;
      for (const ZstdFrame& f : *saved) fits = fits && f.in_size <= max_frame && f.out_size <= max_frame;
      auto matched = fits ? MatchZstdChunkedFrames(std::move(*saved), toc, name)
                          : Result<ZstdChunkedFrames>(Corrupt("a frame is too large"));
      if (matched.ok()) return matched;
      spdlog::warn("{}: ignoring the saved frame table {}: {}", name, path, matched.status().message());
    } else if (saved.status().code() != Code::kNotFound) {
      spdlog::warn("{}: ignoring the saved frame table {}: {}", name, path, saved.status().message());
    }
  }
  OCIFS_ASSIGN_OR_RETURN(ZstdChunkedFrames frames, BuildZstdChunkedFrames(blob, toc, max_frame, name));
  if (!path.empty()) {
    Status st = ZstdFrameFile::Write(path, blob.size(), frames.frames);
    if (!st.ok()) spdlog::warn("{}: cannot save its frame table: {}", name, st.ToString());
  }
  return frames;
}

}  // namespace

Result<std::optional<ByteSourcePtr>> OpenZstdChunked(const ByteSourcePtr& compressed, const DecoderOptions& options,
                                                     uint64_t max_frame_bytes) {
  const uint64_t size = compressed->size();
  if (options.layer_annotations.empty() || size == ByteSource::kUnknownSize) return std::optional<ByteSourcePtr>();
  const std::string name = "zstd:chunked layer " + compressed->Describe();
  auto fallback = [&](const Status& why) -> Result<std::optional<ByteSourcePtr>> {
    if (!IsTocProblem(why)) return why;
    spdlog::warn("{}; reading the layer as a plain zstd stream instead", why.message());
    return std::optional<ByteSourcePtr>();
  };
  auto position = ZstdChunkedPositionOf(options.layer_annotations, size, name);
  if (!position.ok()) return fallback(position.status());
  if (!*position) return std::optional<ByteSourcePtr>();
  auto json = LoadToc(*compressed, **position, options.zstd_chunked_toc_path, name);
  if (!json.ok()) return fallback(json.status());
  const uint64_t data_end = (*position)->offset - 8;
  if (ZstdChunkedTocIsEstargz(*json)) {  // stargz-snapshotter's: laid out as eStargz, in zstd frames
    auto estargz = ParseEstargzToc(*json, data_end, name);
    auto source = estargz.ok() ? OpenEstargzLayout(compressed, *estargz, FrameCodec::kZstd, options,
                                                   max_frame_bytes, name)
                               : Result<ByteSourcePtr>(estargz.status());
    if (!source.ok()) return fallback(source.status());
    return std::optional<ByteSourcePtr>(std::move(*source));
  }
  auto toc = ParseZstdChunkedToc(*json, data_end, name);
  if (!toc.ok()) return fallback(toc.status());
  auto frames = LoadFrames(*compressed, *toc, options.frame_table_path, max_frame_bytes, name);
  if (!frames.ok()) return fallback(frames.status());
  spdlog::debug("{}: {} frames, {} payload chunks from its TOC", name, frames->frames.size(), toc->spans.size());
  std::vector<uint64_t> in_offsets;
  std::vector<TocFrameDigest> digests;
  for (size_t i = 0; i < frames->frames.size(); ++i) {
    in_offsets.push_back(frames->frames[i].in_offset);
    digests.push_back(TocFrameDigest{std::move(frames->digests[i]), 0});
  }
  auto check = TocDigestCheck(std::move(in_offsets), std::move(digests), name);
  return std::optional<ByteSourcePtr>(std::make_shared<ZstdFrameSource>(
      compressed, std::move(frames->frames), options.segment_cache_bytes, options.scheduler, std::move(check)));
}

}  // namespace ocifs
