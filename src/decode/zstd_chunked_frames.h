// The complete frame table of a zstd:chunked blob, from its TOC: each payload
// span is one entry whose sizes the TOC gives; the gaps between spans (tar
// headers, padding, the end-of-archive blocks) are fetched and walked frame
// by frame, and decoded to learn their sizes, since they are not in the TOC
// and their frames need not carry content sizes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "decode/zstd_chunked_toc.h"
#include "decode/zstd_frames.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// frames: sorted, contiguous in out offsets from 0, empty ones left out (as
// ZstdFrameSource takes them); digests[i]: the TOC's sha256 of frame i's
// decoded bytes, "" for a gap frame (which the TOC does not vouch for).
struct ZstdChunkedFrames {
  std::vector<ZstdFrame> frames;
  std::vector<std::string> digests;
};

// A gap larger than this is not walked (the TOC then describes too little of
// the blob to be worth it): kCorrupt.
inline constexpr uint64_t kMaxZstdChunkedGapBytes = 16ull << 20;

// Reads the gaps of `blob` the TOC leaves (hinting them all to
// blob.Prefetch first). kCorrupt "<name>: ..." if a gap is not a sequence of
// whole zstd (or skippable) frames ending exactly where the next span starts,
// or a frame decodes to more than max_frame_out bytes, or a span claims more
// than max_frame_out (in or out).
[[nodiscard]] Result<ZstdChunkedFrames> BuildZstdChunkedFrames(const ByteSource& blob, const ZstdChunkedToc& toc,
                                                               uint64_t max_frame_out, std::string_view name);

// Pairs a saved frame table (ZstdFrameFile) with the TOC: every span must
// be one of its frames with the same sizes. kCorrupt otherwise.
[[nodiscard]] Result<ZstdChunkedFrames> MatchZstdChunkedFrames(std::vector<ZstdFrame> frames,
                                                               const ZstdChunkedToc& toc, std::string_view name);

}  // namespace ocifs
