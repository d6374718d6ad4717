// OpenZstdChunked: a zstd:chunked layer read at random through the frame
// table its TOC gives, with no first pass and no acceleration artifact
// (docs/zstd-chunked.md). The TOC's digest of every payload chunk is checked
// when its frame is decoded.
#pragma once

#include <cstdint>
#include <optional>

#include "decode/decoder.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// nullopt: `compressed` is not zstd:chunked (options.layer_annotations name
// no TOC), or its TOC cannot be used here (malformed, lying about the blob's
// frames, a frame over max_frame_bytes): then one warning names the layer
// and what was wrong, and the caller reads it as a plain zstd stream.
// Otherwise a ZstdFrameSource whose payload frames fail a read with kDataLoss
// (logged once for the layer) when their bytes do not match the TOC.
// Loads and saves the compressed TOC at options.zstd_chunked_toc_path and the
// frame table at options.frame_table_path, so a later open fetches neither.
// Errors: those of reading the blob (kUnavailable, ...).
[[nodiscard]] Result<std::optional<ByteSourcePtr>> OpenZstdChunked(const ByteSourcePtr& compressed,
                                                                   const DecoderOptions& options,
                                                                   uint64_t max_frame_bytes);

}  // namespace ocifs
