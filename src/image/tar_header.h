// TarHeader: one 512-byte tar header block, decoded and verified, before
// PAX / GNU long-name overrides are applied (TarIndex does that).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "ocifs/status.h"

namespace ocifs {

inline constexpr size_t kTarBlockSize = 512;
using TarBlock = std::span<const uint8_t, kTarBlockSize>;

// Rounds a byte count up to whole blocks. `n` must be <= kMaxTarSize.
inline uint64_t TarPadded(uint64_t n) { return (n + kTarBlockSize - 1) / kTarBlockSize * kTarBlockSize; }
// Upper bound on any size or offset read from a tar: keeps offset arithmetic free of overflow.
inline constexpr uint64_t kMaxTarSize = uint64_t{1} << 62;

// Value type. All fields are raw: names are not normalized.
struct TarHeader {
  enum class Format { kV7, kUstar, kOldGnu };

  Format format = Format::kV7;
  char typeflag = '0';
  std::string name;      // ustar: prefix + "/" + name
  std::string linkname;
  uint32_t mode = 0;     // permission bits (07777)
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 0;
  uint64_t size = 0;     // bytes of data following the header (<= kMaxTarSize)
  uint32_t dev_major = 0, dev_minor = 0;

  // True if every byte is zero (an end-of-archive marker).
  static bool IsZeroBlock(TarBlock block);

  // Decodes and verifies one header. kCorrupt (message prefixed with `where`,
  // e.g. "layer sha256:ab.. at offset 1536") for a bad checksum or a malformed
  // or out-of-range number field.
  [[nodiscard]] static Result<TarHeader> Parse(TarBlock block, std::string_view where);
};

// Decodes a numeric header field: octal digits padded with spaces or NULs, or
// GNU base-256 (high bit of the first byte set; 0xff = negative). An empty
// field is 0. kCorrupt naming `what` if malformed or beyond int64.
[[nodiscard]] Result<int64_t> ParseTarNumber(std::span<const uint8_t> field, std::string_view what);

// A NUL-terminated (or full-width) string field.
std::string TarString(std::span<const uint8_t> field);

}  // namespace ocifs
