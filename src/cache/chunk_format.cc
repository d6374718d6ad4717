#include "cache/chunk_format.h"
#include "base/crc32.h"


#include <cstring>
#include <string>

#include "base/little_endian.h"

namespace ocifs {
namespace {

constexpr char kMagic[8] = {'O', 'C', 'I', 'F', 'S', 'C', 'H', 'K'};
constexpr size_t kHeaderCrcOffset = 44;

Status Mismatch(const char* field, uint64_t got, uint64_t want) {
  return Corrupt(std::string("chunk header field ") + field + " is " + std::to_string(got) +
                 ", expected " + std::to_string(want));
}

}  // namespace

uint32_t ChunkCrc32(std::span<const uint8_t> data) {
  return Crc32(data);
}

void EncodeChunkHeader(const ChunkHeader& h, std::span<uint8_t, kChunkHeaderSize> out) {
  uint8_t* p = out.data();
  std::memcpy(p, kMagic, sizeof(kMagic));
  StoreLe<uint16_t>(p + 8, kChunkFormatVersion);
  StoreLe<uint16_t>(p + 10, static_cast<uint16_t>(kChunkHeaderSize));
  StoreLe<uint32_t>(p + 12, h.chunk_size);
  StoreLe<uint64_t>(p + 16, h.index);
  StoreLe<uint64_t>(p + 24, h.key_hash);
  StoreLe<uint32_t>(p + 32, h.data_length);
  StoreLe<uint32_t>(p + 36, h.data_crc);
  StoreLe<uint32_t>(p + 40, 0);
  StoreLe<uint32_t>(p + kHeaderCrcOffset, ChunkCrc32({p, kHeaderCrcOffset}));
}

Status CheckChunkHeader(std::span<const uint8_t, kChunkHeaderSize> in, const ChunkHeader& want,
                        uint32_t* data_crc) {
  const uint8_t* p = in.data();
  if (std::memcmp(p, kMagic, sizeof(kMagic)) != 0) return Corrupt("chunk header: bad magic");
  if (LoadLe<uint32_t>(p + kHeaderCrcOffset) != ChunkCrc32({p, kHeaderCrcOffset})) {
    return Corrupt("chunk header: header CRC mismatch");
  }
  if (auto v = LoadLe<uint16_t>(p + 8); v != kChunkFormatVersion) return Mismatch("version", v, kChunkFormatVersion);
  if (auto v = LoadLe<uint16_t>(p + 10); v != kChunkHeaderSize) return Mismatch("header size", v, kChunkHeaderSize);
  if (auto v = LoadLe<uint32_t>(p + 12); v != want.chunk_size) return Mismatch("chunk size", v, want.chunk_size);
  if (auto v = LoadLe<uint64_t>(p + 16); v != want.index) return Mismatch("chunk index", v, want.index);
  if (auto v = LoadLe<uint64_t>(p + 24); v != want.key_hash) return Mismatch("key hash", v, want.key_hash);
  if (auto v = LoadLe<uint32_t>(p + 32); v != want.data_length) return Mismatch("data length", v, want.data_length);
  *data_crc = LoadLe<uint32_t>(p + 36);
  return Status::Ok();
}

}  // namespace ocifs
