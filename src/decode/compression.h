// Compression: which codec a layer blob uses, detected from its magic bytes.
#pragma once

#include <string_view>

#include "ocifs/byte_source.h"

namespace ocifs {

enum class Compression { kNone, kGzip, kZstd };

// "none", "gzip", "zstd".
std::string_view CompressionName(Compression compression);

// Reads the first 4 bytes of `blob`: 1f 8b = gzip; 28 b5 2f fd or a zstd
// skippable frame (50..5f 2a 4d 18) = zstd; anything else (including a blob
// shorter than the magic) = kNone. Fails only if the read fails.
// Thread safety: as safe as `blob`.
[[nodiscard]] Result<Compression> DetectCompression(const ByteSource& blob);

}  // namespace ocifs
