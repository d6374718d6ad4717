// OpenEstargz: an eStargz layer read at random through the TOC it carries,
// with no first pass and no acceleration artifact (docs/estargz.md). Each
// content chunk is its own gzip member; a read inflates only the members of
// the chunks it overlaps, and checks each chunk against the TOC's digest.
#pragma once

#include <cstdint>
#include <optional>

#include "decode/decoder.h"
#include "decode/estargz_toc.h"
#include "decode/zstd_frame_source.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// nullopt: `compressed` is not eStargz (options.layer_annotations carry no
// TOC digest), or its footer or TOC cannot be used (malformed, not the one
// the annotation vouches for, chunks not whole gzip members where they
// should be, a chunk over max_frame_bytes): then one warning names the layer
// and what was wrong, and the caller reads it as a plain gzip layer.
// Otherwise a ZstdFrameSource (FrameCodec::kGzip) whose chunk frames fail a
// read with kDataLoss (logged once for the layer) when their decoded bytes
// do not match the TOC's chunkDigest.
// At open it reads the footer, the TOC, and the members holding tar headers:
// those before the first chunk and those after each file's last chunk.
// Errors: those of reading the blob (kUnavailable, ...).
[[nodiscard]] Result<std::optional<ByteSourcePtr>> OpenEstargz(const ByteSourcePtr& compressed,
                                                               const DecoderOptions& options,
                                                               uint64_t max_frame_bytes);

// The source of a layer laid out as the estargz package writes it, from its
// parsed TOC: every chunk starts a compressed unit of its own, gzip members
// (kGzip: eStargz) or zstd frames (kZstd: stargz-snapshotter's zstd:chunked,
// whose TOC has toc_out_size 0: nothing after toc.toc_offset decodes to
// anything). The units before the first chunk and from each file's last chunk
// on (tar padding, the next headers) are fetched and decoded here to learn
// their sizes. kCorrupt "<name>: ..." if they are not whole units up to the
// next chunk, a chunk decodes to fewer bytes than its size, or a chunk is
// larger than max_frame_bytes; errors reaching the blob as they are.
[[nodiscard]] Result<ByteSourcePtr> OpenEstargzLayout(const ByteSourcePtr& compressed, const EstargzToc& toc,
                                                      FrameCodec codec, const DecoderOptions& options,
                                                      uint64_t max_frame_bytes, const std::string& name);

}  // namespace ocifs
