// OpenEstargz: an eStargz layer read at random through the TOC it carries,
// with no first pass and no acceleration artifact (docs/estargz.md). Each
// content chunk is its own gzip member; a read inflates only the members of
// the chunks it overlaps, and checks each chunk against the TOC's digest.
#pragma once

#include <cstdint>
#include <optional>

#include "decode/decoder.h"
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

}  // namespace ocifs
