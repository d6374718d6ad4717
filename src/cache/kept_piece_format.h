// The kept-piece file format: where a piece and its table entry live, and the
// encoding and checks of the header and the entries (docs/cache-format.md,
// "Kept pieces").
//
// One sparse file per key. All integers are little-endian.
//
//   [0, 4096)                 the header block: a 32-byte header, zeros, and
//                             from byte 2048 the claim words (PieceClaims)
//   group g (g = 0, 1, ...)   at kKeptHeaderBlock + g * GroupBytes(piece size):
//     one table block         kKeptPiecesPerGroup entries of 16 bytes
//     the group's pieces      slot s at + kKeptTableBlock + s * piece size
//   piece i is slot i % kKeptPiecesPerGroup of group i / kKeptPiecesPerGroup.
//
// Header (32 bytes):
//   0  8  magic "OCIFSKPT"
//   8  2  format version (1)
//  10  2  header size (32)
//  12  4  piece size (bytes)
//  16  8  key hash: CacheKeyHash(key) (FNV-1a 64)
//  24  4  pieces per group (256)
//  28  4  header CRC-32 of bytes [0, 28)
// Entry (16 bytes; all zeros = no piece):
//   0  4  data length (1..piece size; 0 = no piece)
//   4  4  data CRC-32 of the piece's bytes (zlib crc32, as chunk files)
//   8  4  piece index, low 32 bits
//  12  4  entry CRC-32 of the 8-byte key hash followed by entry bytes [0, 12)
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "ocifs/status.h"

namespace ocifs {

inline constexpr uint16_t kKeptFormatVersion = 1;
inline constexpr size_t kKeptHeaderSize = 32;
inline constexpr uint64_t kKeptHeaderBlock = 4096;  // the header's block; the first group starts after it
inline constexpr uint64_t kKeptEntrySize = 16;
inline constexpr uint64_t kKeptPiecesPerGroup = 256;
inline constexpr uint64_t kKeptTableBlock = kKeptEntrySize * kKeptPiecesPerGroup;  // 4096
// The header block's bytes [kKeptClaimsOffset, kKeptHeaderBlock): 512 32-bit
// claim words, changed only through a shared mapping (PieceClaims). Readers
// of the header look only at its first 32 bytes, so the words need no new
// format version: files of older builds have zeros there (no claims).
inline constexpr uint64_t kKeptClaimsOffset = 2048;
inline constexpr uint64_t kKeptClaimWords = (kKeptHeaderBlock - kKeptClaimsOffset) / 4;  // 512

// Bytes of one group: its table block and its pieces.
constexpr uint64_t KeptGroupBytes(uint32_t piece_size) {
  return kKeptTableBlock + kKeptPiecesPerGroup * uint64_t{piece_size};
}
// Offset of group g's table block in the file.
constexpr uint64_t KeptTableOffset(uint32_t piece_size, uint64_t group) {
  return kKeptHeaderBlock + group * KeptGroupBytes(piece_size);
}
// Offset of piece `index`'s table entry.
constexpr uint64_t KeptEntryOffset(uint32_t piece_size, uint64_t index) {
  return KeptTableOffset(piece_size, index / kKeptPiecesPerGroup) + (index % kKeptPiecesPerGroup) * kKeptEntrySize;
}
// Offset of piece `index`'s bytes.
constexpr uint64_t KeptDataOffset(uint32_t piece_size, uint64_t index) {
  return KeptTableOffset(piece_size, index / kKeptPiecesPerGroup) + kKeptTableBlock +
         (index % kKeptPiecesPerGroup) * uint64_t{piece_size};
}

struct KeptHeader {
  uint32_t piece_size = 0;
  uint64_t key_hash = 0;
};
void EncodeKeptHeader(const KeptHeader& header, std::span<uint8_t, kKeptHeaderSize> out);
// Checks magic, version, header size, pieces per group and the header CRC,
// then that piece size and key hash equal `expected`. kCorrupt naming the
// first field that differs otherwise.
[[nodiscard]] Status CheckKeptHeader(std::span<const uint8_t, kKeptHeaderSize> in, const KeptHeader& expected);

struct KeptEntry {
  uint32_t length = 0;    // bytes of the piece
  uint32_t data_crc = 0;  // ChunkCrc32 of those bytes
};
void EncodeKeptEntry(uint64_t key_hash, uint64_t index, const KeptEntry& entry,
                     std::span<uint8_t, kKeptEntrySize> out);
// The entry of piece `index` if `in` holds one that is present, whole (entry
// CRC) and names that piece with a length of 1..piece_size; nullopt otherwise
// (no piece, a torn or stale entry: the piece is not served).
std::optional<KeptEntry> DecodeKeptEntry(uint64_t key_hash, uint64_t index, uint32_t piece_size,
                                         std::span<const uint8_t, kKeptEntrySize> in);

}  // namespace ocifs
