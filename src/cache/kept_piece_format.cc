#include "cache/kept_piece_format.h"

#include <array>
#include <cstring>
#include <string>

#include "base/little_endian.h"
#include "cache/chunk_format.h"

namespace ocifs {
namespace {

constexpr char kMagic[8] = {'O', 'C', 'I', 'F', 'S', 'K', 'P', 'T'};
constexpr size_t kHeaderCrcOffset = 28;
constexpr size_t kEntryCrcOffset = 12;

Status Mismatch(const char* field, uint64_t got, uint64_t want) {
  return Corrupt(std::string("kept-piece header field ") + field + " is " + std::to_string(got) + ", expected " +
                 std::to_string(want));
}

// CRC-32 of the key hash (8 bytes, little-endian) followed by the entry's first 12 bytes.
uint32_t EntryCrc(uint64_t key_hash, const uint8_t* entry) {
  std::array<uint8_t, 8 + kEntryCrcOffset> bytes;
  StoreLe<uint64_t>(bytes.data(), key_hash);
  std::memcpy(bytes.data() + 8, entry, kEntryCrcOffset);
  return ChunkCrc32(bytes);
}

}  // namespace

void EncodeKeptHeader(const KeptHeader& h, std::span<uint8_t, kKeptHeaderSize> out) {
  uint8_t* p = out.data();
  std::memcpy(p, kMagic, sizeof(kMagic));
  StoreLe<uint16_t>(p + 8, kKeptFormatVersion);
  StoreLe<uint16_t>(p + 10, static_cast<uint16_t>(kKeptHeaderSize));
  StoreLe<uint32_t>(p + 12, h.piece_size);
  StoreLe<uint64_t>(p + 16, h.key_hash);
  StoreLe<uint32_t>(p + 24, static_cast<uint32_t>(kKeptPiecesPerGroup));
  StoreLe<uint32_t>(p + kHeaderCrcOffset, ChunkCrc32({p, kHeaderCrcOffset}));
}

Status CheckKeptHeader(std::span<const uint8_t, kKeptHeaderSize> in, const KeptHeader& want) {
  const uint8_t* p = in.data();
  if (std::memcmp(p, kMagic, sizeof(kMagic)) != 0) return Corrupt("kept-piece header: bad magic");
  if (LoadLe<uint32_t>(p + kHeaderCrcOffset) != ChunkCrc32({p, kHeaderCrcOffset})) {
    return Corrupt("kept-piece header: header CRC mismatch");
  }
  if (auto v = LoadLe<uint16_t>(p + 8); v != kKeptFormatVersion) return Mismatch("version", v, kKeptFormatVersion);
  if (auto v = LoadLe<uint16_t>(p + 10); v != kKeptHeaderSize) return Mismatch("header size", v, kKeptHeaderSize);
  if (auto v = LoadLe<uint32_t>(p + 12); v != want.piece_size) return Mismatch("piece size", v, want.piece_size);
  if (auto v = LoadLe<uint64_t>(p + 16); v != want.key_hash) return Mismatch("key hash", v, want.key_hash);
  if (auto v = LoadLe<uint32_t>(p + 24); v != kKeptPiecesPerGroup) {
    return Mismatch("pieces per group", v, kKeptPiecesPerGroup);
  }
  return Status::Ok();
}

void EncodeKeptEntry(uint64_t key_hash, uint64_t index, const KeptEntry& entry,
                     std::span<uint8_t, kKeptEntrySize> out) {
  uint8_t* p = out.data();
  StoreLe<uint32_t>(p, entry.length);
  StoreLe<uint32_t>(p + 4, entry.data_crc);
  StoreLe<uint32_t>(p + 8, static_cast<uint32_t>(index));
  StoreLe<uint32_t>(p + kEntryCrcOffset, EntryCrc(key_hash, p));
}

std::optional<KeptEntry> DecodeKeptEntry(uint64_t key_hash, uint64_t index, uint32_t piece_size,
                                         std::span<const uint8_t, kKeptEntrySize> in) {
  const uint8_t* p = in.data();
  KeptEntry entry{LoadLe<uint32_t>(p), LoadLe<uint32_t>(p + 4)};
  if (entry.length == 0 || entry.length > piece_size) return std::nullopt;
  if (LoadLe<uint32_t>(p + 8) != static_cast<uint32_t>(index)) return std::nullopt;
  if (LoadLe<uint32_t>(p + kEntryCrcOffset) != EntryCrc(key_hash, p)) return std::nullopt;
  return entry;
}

}  // namespace ocifs
