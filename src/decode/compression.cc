#include "decode/compression.h"

#include <array>

namespace ocifs {

std::string_view CompressionName(Compression compression) {
  switch (compression) {
    case Compression::kNone: return "none";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
  }
  return "unknown";
}

Result<Compression> DetectCompression(const ByteSource& blob) {
  std::array<uint8_t, 4> m{};
  OCIFS_ASSIGN_OR_RETURN(size_t n, blob.ReadAt(0, m));
  if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) return Compression::kGzip;
  if (n < 4) return Compression::kNone;
  uint32_t magic = uint32_t{m[0]} | uint32_t{m[1]} << 8 | uint32_t{m[2]} << 16 | uint32_t{m[3]} << 24;
  if (magic == 0xFD2FB528u) return Compression::kZstd;               // zstd frame
  if ((magic & 0xFFFFFFF0u) == 0x184D2A50u) return Compression::kZstd;  // skippable frame
  return Compression::kNone;
}

}  // namespace ocifs
