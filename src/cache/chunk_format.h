// The chunk file header: encoding, decoding and checking (docs/cache-format.md).
//
// A chunk file is a 48-byte header followed by the chunk's data. All integers
// are little-endian:
//   0  8  magic "OCIFSCHK"
//   8  2  format version (1)
//  10  2  header size (48)
//  12  4  chunk size of the cache that wrote it (bytes)
//  16  8  chunk index (the data starts at blob offset index * chunk size)
//  24  8  key hash: CacheKeyHash(key) (FNV-1a 64)
//  32  4  data length (bytes; 1..chunk size)
//  36  4  data CRC-32 (zlib crc32, IEEE polynomial, initial value 0)
//  40  4  reserved, 0
//  44  4  header CRC-32 of bytes [0, 44)
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "ocifs/status.h"

namespace ocifs {

inline constexpr size_t kChunkHeaderSize = 48;
inline constexpr uint16_t kChunkFormatVersion = 1;

struct ChunkHeader {
  uint32_t chunk_size = 0;
  uint64_t index = 0;
  uint64_t key_hash = 0;
  uint32_t data_length = 0;
  uint32_t data_crc = 0;
};

// zlib's crc32 of `data` (initial value 0); chunk lengths fit in zlib's uInt.
uint32_t ChunkCrc32(std::span<const uint8_t> data);

void EncodeChunkHeader(const ChunkHeader& header, std::span<uint8_t, kChunkHeaderSize> out);

// Checks magic, version, header size and header CRC, then that every field but
// data_crc equals `expected`. On success stores data_crc into *data_crc.
// kCorrupt naming the first field that differs otherwise.
[[nodiscard]] Status CheckChunkHeader(std::span<const uint8_t, kChunkHeaderSize> in,
                                      const ChunkHeader& expected, uint32_t* data_crc);

}  // namespace ocifs
