#include "image/tar_header.h"

#include <algorithm>
#include <cstring>

namespace ocifs {
namespace {

// Field offsets and widths of the ustar / old GNU header.
constexpr size_t kName = 0, kNameLen = 100;
constexpr size_t kMode = 100, kUid = 108, kGid = 116, kIdLen = 8;
constexpr size_t kSize = 124, kMtime = 136, kNumLen = 12;
constexpr size_t kChksum = 148, kChksumLen = 8;
constexpr size_t kTypeflag = 156;
constexpr size_t kLinkname = 157;
constexpr size_t kMagic = 257;
constexpr size_t kDevMajor = 329, kDevMinor = 337;
constexpr size_t kPrefix = 345, kPrefixLen = 155;

std::span<const uint8_t> Field(TarBlock block, size_t offset, size_t len) {
  return std::span<const uint8_t>(block.data() + offset, len);
}

Result<uint32_t> ParseU32(TarBlock block, size_t offset, size_t len, std::string_view what) {
  OCIFS_ASSIGN_OR_RETURN(int64_t v, ParseTarNumber(Field(block, offset, len), what));
  if (v < 0 || v > int64_t{UINT32_MAX}) return Corrupt(std::string(what) + " out of range: " + std::to_string(v));
  return static_cast<uint32_t>(v);
}

}  // namespace

std::string TarString(std::span<const uint8_t> field) {
  const uint8_t* end = std::find(field.begin(), field.end(), uint8_t{0}).base();
  return std::string(reinterpret_cast<const char*>(field.data()), end - field.data());
}

Result<int64_t> ParseTarNumber(std::span<const uint8_t> field, std::string_view what) {
  if (!field.empty() && (field[0] & 0x80)) {
    // Base-256, two's complement big-endian; the first byte's top bit is the marker.
    bool negative = field[0] == 0xff;
    if (!negative && field[0] != 0x80) return Corrupt("bad base-256 " + std::string(what));
    uint64_t v = negative ? ~uint64_t{0} : 0;
    for (size_t i = 1; i < field.size(); ++i) {
      if ((v >> 56) != (negative ? 0xffu : 0u)) return Corrupt(std::string(what) + " overflows 64 bits");
      v = (v << 8) | field[i];
    }
    int64_t s = static_cast<int64_t>(v);
    if (negative != (s < 0)) return Corrupt(std::string(what) + " overflows 64 bits");
    return s;
  }
  size_t i = 0;
  while (i < field.size() && (field[i] == ' ' || field[i] == 0)) ++i;
  uint64_t v = 0;
  for (; i < field.size() && field[i] != ' ' && field[i] != 0; ++i) {
    if (field[i] < '0' || field[i] > '7') {
      return Corrupt("bad octal digit in " + std::string(what));
    }
    if (v > (uint64_t{INT64_MAX} >> 3)) return Corrupt(std::string(what) + " overflows 64 bits");
    v = (v << 3) | static_cast<uint64_t>(field[i] - '0');
  }
  for (; i < field.size(); ++i) {
    if (field[i] != ' ' && field[i] != 0) return Corrupt("garbage after number in " + std::string(what));
  }
  return static_cast<int64_t>(v);
}

bool TarHeader::IsZeroBlock(TarBlock block) {
  return std::all_of(block.begin(), block.end(), [](uint8_t b) { return b == 0; });
}

Result<TarHeader> TarHeader::Parse(TarBlock block, std::string_view where) {
  auto fail = [&](const Status& s) { return s.WithContext(where); };

  // Checksum: the sum of all bytes with the checksum field taken as spaces.
  // Some old writers summed signed chars; accept either.
  auto stored = ParseTarNumber(Field(block, kChksum, kChksumLen), "header checksum");
  if (!stored.ok()) return fail(stored.status());
  int64_t unsigned_sum = 0, signed_sum = 0;
  for (size_t i = 0; i < kTarBlockSize; ++i) {
    uint8_t b = (i >= kChksum && i < kChksum + kChksumLen) ? uint8_t{' '} : block[i];
    unsigned_sum += b;
    signed_sum += static_cast<int8_t>(b);
  }
  if (*stored != unsigned_sum && *stored != signed_sum) {
    return Corrupt(std::string(where) + ": bad tar header checksum (stored " + std::to_string(*stored) +
                   ", computed " + std::to_string(unsigned_sum) + ")");
  }

  TarHeader h;
  if (std::memcmp(block.data() + kMagic, "ustar\0", 6) == 0) {
    h.format = Format::kUstar;
  } else if (std::memcmp(block.data() + kMagic, "ustar  \0", 8) == 0) {
    h.format = Format::kOldGnu;
  }
  h.typeflag = static_cast<char>(block[kTypeflag]);
  h.name = TarString(Field(block, kName, kNameLen));
  if (h.format == Format::kUstar) {
    std::string prefix = TarString(Field(block, kPrefix, kPrefixLen));
    if (!prefix.empty()) h.name = prefix + "/" + h.name;
  }
  h.linkname = TarString(Field(block, kLinkname, kNameLen));

  auto mode = ParseTarNumber(Field(block, kMode, kIdLen), "mode");
  if (!mode.ok()) return fail(mode.status());
  h.mode = static_cast<uint32_t>(*mode & 07777);
  auto uid = ParseU32(block, kUid, kIdLen, "uid");
  if (!uid.ok()) return fail(uid.status());
  h.uid = *uid;
  auto gid = ParseU32(block, kGid, kIdLen, "gid");
  if (!gid.ok()) return fail(gid.status());
  h.gid = *gid;
  auto mtime = ParseTarNumber(Field(block, kMtime, kNumLen), "mtime");
  if (!mtime.ok()) return fail(mtime.status());
  h.mtime = *mtime;
  auto size = ParseTarNumber(Field(block, kSize, kNumLen), "size");
  if (!size.ok()) return fail(size.status());
  if (*size < 0 || static_cast<uint64_t>(*size) > kMaxTarSize) {
    return Corrupt(std::string(where) + ": tar size field out of range: " + std::to_string(*size));
  }
  h.size = static_cast<uint64_t>(*size);
  if (h.format != Format::kV7 && (h.typeflag == '3' || h.typeflag == '4')) {
    auto major = ParseU32(block, kDevMajor, kIdLen, "device major");
    if (!major.ok()) return fail(major.status());
    auto minor = ParseU32(block, kDevMinor, kIdLen, "device minor");
    if (!minor.ok()) return fail(minor.status());
    h.dev_major = *major;
    h.dev_minor = *minor;
  }
  return h;
}

}  // namespace ocifs
