// Compression: which codec a layer blob uses, detected from its magic bytes.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

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
// The same test on bytes already read (the first bytes of a blob).
Compression CompressionOfMagic(std::span<const uint8_t> head);

// The first `want` bytes (at most) of what `head`, the first bytes of a blob
// compressed as `compression`, decompresses to: fewer when `head` ends first
// (a short blob, or a head cut before that much output). For a small look at a
// layer's content with one ranged read (a zstd block is at most 128 KiB, a
// deflate stored block 64 KiB: 136 KiB of head always yield the first bytes).
// kCorrupt if the bytes are no stream of that compression. Pure function.
[[nodiscard]] Result<std::vector<uint8_t>> DecompressHead(std::span<const uint8_t> head, Compression compression,
                                                          size_t want);

}  // namespace ocifs
