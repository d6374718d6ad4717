#include "decode/gzip_index_v4.h"
#include "base/crc32.h"


#include <algorithm>
#include <cstring>

#include "base/little_endian.h"

namespace ocifs {
namespace {

constexpr char kV4Magic[8] = {'O', 'C', 'I', 'F', 'S', 'G', 'Z', 'I'};
constexpr uint32_t kV4FlagLearnZeroRuns = 1;
// A compressed window is at most compressBound(32 KiB), a little over 32 KiB.
constexpr uint32_t kMaxZWindow = 64u << 10;
// A record's kind (byte 17).
constexpr uint8_t kKindBlockBoundary = 0, kKindMemberStart = 1, kKindInsideBlock = 2;

uint32_t V4Crc(std::span<const uint8_t> b) {
  return Crc32(std::span<const uint8_t>(b.data(), b.size()));
}
// As gzip_index.cc: more output than deflate makes of `in` compressed bytes (1032:1).
bool V4MoreThanDeflateMakes(uint64_t out, uint64_t in) {
  constexpr uint64_t kMaxRatio = 1032;
  return in < UINT64_MAX / 2 && out / kMaxRatio > in + 4;
}

}  // namespace

Result<std::vector<uint8_t>> GzipIndexV4::Serialize(const GzipIndex& index) {
  if (!index.has_checksums()) return InvalidArgument("a version 4 gzip index needs block checksums");
  const auto& cps = index.checkpoints;
  const std::span<const std::pair<uint64_t, uint64_t>> runs =
      index.zero_runs_known ? std::span(index.zero_runs) : std::span<const std::pair<uint64_t, uint64_t>>();
  const uint64_t table = kHeaderSize + kRecordSize * cps.size() + 8 + 16 * runs.size() + 12 +
                         4 * index.block_crcs.size() + 4;
  std::vector<uint8_t> windows;  // the windows, in checkpoint order, after the table
  std::vector<uint8_t> b;
  b.assign(kV4Magic, kV4Magic + 8);
  AppendLe<uint32_t>(b, index.has_inside_block_checkpoints() ? kVersionInsideBlocks : kVersion);
  AppendLe<uint32_t>(b, index.zero_runs_known ? 0 : kV4FlagLearnZeroRuns);
  AppendLe<uint64_t>(b, index.compressed_size);
  AppendLe<uint64_t>(b, index.decompressed_size);
  AppendLe<uint64_t>(b, index.spacing);
  AppendLe<uint64_t>(b, cps.size());
  const size_t tail_len = std::min(index.tail.size(), GzipIndex::kMaxTail);
  AppendLe<uint32_t>(b, static_cast<uint32_t>(tail_len));
  for (size_t i = 0; i < GzipIndex::kMaxTail; ++i) b.push_back(i < tail_len ? index.tail[i] : 0);
  AppendLe<uint64_t>(b, table);
  for (const GzipCheckpoint& cp : cps) {
    // The compressed window (after the block header, inside a block): in
    // memory, or read back from its file (where the header is already first).
    std::vector<uint8_t> z = cp.block_header;
    z.insert(z.end(), cp.zwindow.begin(), cp.zwindow.end());
    if (cp.window_file && cp.zwindow_length > 0) {
      OCIFS_ASSIGN_OR_RETURN(z, cp.window_file->Read(cp.zwindow_offset, cp.zwindow_length));
    }
    const size_t header_bytes = cp.HeaderBytes();
    if (z.size() < header_bytes || (cp.window_size == 0) != (z.size() == header_bytes)) {
      return InvalidArgument("gzip checkpoint without its window");
    }
    if (cp.inside_block() && cp.member_start) return InvalidArgument("gzip checkpoint: a member start inside a block");
    AppendLe<uint64_t>(b, cp.out);
    AppendLe<uint64_t>(b, cp.in);
    b.push_back(cp.bits);
    b.push_back(cp.member_start ? kKindMemberStart : cp.inside_block() ? kKindInsideBlock : kKindBlockBoundary);
    AppendLe<uint16_t>(b, cp.header_bits);
    AppendLe<uint32_t>(b, cp.window_size);
    AppendLe<uint64_t>(b, z.empty() ? 0 : table + windows.size());
    AppendLe<uint32_t>(b, static_cast<uint32_t>(z.size()));
    AppendLe<uint32_t>(b, z.empty() ? 0 : V4Crc(z));
    windows.insert(windows.end(), z.begin(), z.end());
  }
  AppendLe<uint64_t>(b, runs.size());
  for (const auto& [start, end] : runs) {
    AppendLe<uint64_t>(b, start);
    AppendLe<uint64_t>(b, end - start);
  }
  AppendLe<uint32_t>(b, index.block_size);
  AppendLe<uint64_t>(b, index.block_crcs.size());
  for (uint32_t block_crc : index.block_crcs) AppendLe<uint32_t>(b, block_crc);
  AppendLe<uint32_t>(b, V4Crc(b));
  if (b.size() != table) return Internal("version 4 gzip index: table length mismatch");
  b.insert(b.end(), windows.begin(), windows.end());
  return b;
}

Result<uint64_t> GzipIndexV4::TableLength(std::span<const uint8_t> header, uint64_t file_size,
                                          const std::string& what) {
  auto bad = [&](const std::string& why) { return Corrupt("gzip index " + what + ": " + why); };
  if (header.size() < kHeaderSize) return bad("too short (" + std::to_string(header.size()) + " bytes)");
  if (std::memcmp(header.data(), kV4Magic, 8) != 0) return bad("bad magic");
  const uint32_t version = LoadLe<uint32_t>(header.data() + 8);
  if (version != kVersion && version != kVersionInsideBlocks) {
    return bad("version " + std::to_string(version) + ", not 4 or 5");
  }
  const uint64_t table = LoadLe<uint64_t>(header.data() + 68);
  if (table < kHeaderSize + kRecordSize + 8 + 12 + 4 || table > file_size || table > kMaxTableBytes) {
    return bad("table length " + std::to_string(table) + " out of bounds (file of " + std::to_string(file_size) +
               " bytes)");
  }
  return table;
}

Result<GzipIndex> GzipIndexV4::ParseTable(std::span<const uint8_t> bytes, uint64_t file_size,
                                          std::shared_ptr<const GzipWindowFile> windows, const std::string& what) {
  auto bad = [&](const std::string& why) { return Corrupt("gzip index " + what + ": " + why); };
  OCIFS_ASSIGN_OR_RETURN(const uint64_t table, TableLength(bytes, file_size, what));
  if (bytes.size() != table) return bad("table of " + std::to_string(bytes.size()) + " bytes, not " + std::to_string(table));
  const size_t body = bytes.size() - 4;
  if (V4Crc(bytes.first(body)) != LoadLe<uint32_t>(bytes.data() + body)) return bad("table checksum mismatch");
  const uint8_t* p = bytes.data();
  const bool inside_blocks = LoadLe<uint32_t>(p + 8) == kVersionInsideBlocks;
  const uint32_t flags = LoadLe<uint32_t>(p + 12);
  if (flags & ~kV4FlagLearnZeroRuns) return bad("unknown flags " + std::to_string(flags));
  GzipIndex index;
  index.zero_runs_known = !(flags & kV4FlagLearnZeroRuns);
  index.compressed_size = LoadLe<uint64_t>(p + 16);
  index.decompressed_size = LoadLe<uint64_t>(p + 24);
  index.spacing = LoadLe<uint64_t>(p + 32);
  const uint64_t count = LoadLe<uint64_t>(p + 40);
  const uint32_t tail_len = LoadLe<uint32_t>(p + 48);
  if (tail_len > GzipIndex::kMaxTail || tail_len > index.compressed_size) return bad("bad tail length");
  index.tail.assign(p + 52, p + 52 + tail_len);
  if (std::any_of(p + 52 + tail_len, p + 52 + GzipIndex::kMaxTail, [](uint8_t b) { return b != 0; })) {
    return bad("bytes after the tail are not zero");
  }
  if (count == 0 || count > (body - kHeaderSize) / kRecordSize) return bad("bad checkpoint count");
  index.checkpoints.reserve(static_cast<size_t>(count));
  size_t pos = kHeaderSize;
  for (uint64_t i = 0; i < count; ++i, pos += kRecordSize) {
    const uint8_t* r = p + pos;
    GzipCheckpoint cp;
    cp.out = LoadLe<uint64_t>(r);
    cp.in = LoadLe<uint64_t>(r + 8);
    cp.bits = r[16];
    const uint8_t kind = r[17];
    cp.header_bits = LoadLe<uint16_t>(r + 18);
    if (kind > (inside_blocks ? kKindInsideBlock : kKindMemberStart) ||
        (kind == kKindInsideBlock) != (cp.header_bits != 0) || (kind == kKindInsideBlock && cp.header_bits < 3)) {
      return bad("checkpoint " + std::to_string(i) + ": bad kind");
    }
    cp.member_start = kind == kKindMemberStart;
    cp.window_size = LoadLe<uint32_t>(r + 20);
    const uint64_t zoffset = LoadLe<uint64_t>(r + 24);
    const uint32_t zlen = LoadLe<uint32_t>(r + 32);
    const uint32_t zcrc = LoadLe<uint32_t>(r + 36);
    const std::string at = "checkpoint " + std::to_string(i) + " (decompressed offset " + std::to_string(cp.out) + ")";
    if (i == 0 ? (cp.out != 0 || !cp.member_start || cp.in != 0)
               : cp.out <= index.checkpoints.back().out || cp.in < index.checkpoints.back().in) {
      return bad(at + ": out of order");
    }
    if (cp.out > index.decompressed_size || cp.in > index.compressed_size || cp.bits > 7 ||
        (cp.bits > 0 && cp.in == 0) || cp.window_size > GzipCheckpoint::kWindowSize ||
        (cp.member_start && (cp.bits != 0 || cp.window_size != 0)) ||
        (cp.window_size == 0) != (zlen == cp.HeaderBytes()) || zlen > kMaxZWindow + cp.HeaderBytes() ||
        (zlen == 0 && (zoffset != 0 || zcrc != 0))) {
      return bad(at + ": field out of range");
    }
    if (zlen > 0 && (zoffset < table || zoffset > file_size || zlen > file_size - zoffset)) {
      return bad(at + ": its window (" + std::to_string(zlen) + " bytes at " + std::to_string(zoffset) +
                 ") is not between the table and the end of the file");
    }
    if (i > 0 && V4MoreThanDeflateMakes(cp.out - index.checkpoints.back().out, cp.in - index.checkpoints.back().in)) {
      return bad(at + ": more output than deflate makes of its compressed bytes");
    }
    if (zlen > 0) {
      cp.window_file = windows;
      cp.zwindow_offset = zoffset;
      cp.zwindow_length = zlen;
      cp.zwindow_crc = zcrc;
    }
    index.checkpoints.push_back(std::move(cp));
  }
  if (V4MoreThanDeflateMakes(index.decompressed_size - index.checkpoints.back().out,
                           index.compressed_size - index.checkpoints.back().in)) {
    return bad("decompressed size " + std::to_string(index.decompressed_size) +
               ": more output than deflate makes of its compressed bytes");
  }
  OCIFS_RETURN_IF_ERROR(GzipIndex::ParseZeroRuns(bytes.first(body), pos, index).WithContext("gzip index " + what));
  if (!index.zero_runs_known && !index.zero_runs.empty()) return bad("zero runs given, but its flags say they are not");
  OCIFS_RETURN_IF_ERROR(GzipIndex::ParseChecksums(bytes.first(body), pos, index).WithContext("gzip index " + what));
  if (pos != body) return bad("trailing bytes after the last section of its table");
  return index;
}

Result<GzipIndex> GzipIndexV4::Parse(std::span<const uint8_t> bytes, const std::string& what) {
  OCIFS_ASSIGN_OR_RETURN(const uint64_t table, TableLength(bytes, bytes.size(), what));
  OCIFS_ASSIGN_OR_RETURN(GzipIndex index, ParseTable(bytes.first(static_cast<size_t>(table)), bytes.size(), nullptr, what));
  std::vector<uint8_t> window(GzipCheckpoint::kWindowSize);
  for (GzipCheckpoint& cp : index.checkpoints) {
    if (cp.zwindow_length == 0) continue;
    const auto z = bytes.subspan(static_cast<size_t>(cp.zwindow_offset), cp.zwindow_length);
    if (V4Crc(z) != *cp.zwindow_crc) {
      return Corrupt("gzip index " + what + ": the window of its checkpoint at decompressed offset " +
                     std::to_string(cp.out) + " does not match its CRC-32");
    }
    cp.block_header.assign(z.begin(), z.begin() + static_cast<ptrdiff_t>(cp.HeaderBytes()));
    cp.zwindow.assign(z.begin() + static_cast<ptrdiff_t>(cp.HeaderBytes()), z.end());
    OCIFS_RETURN_IF_ERROR(DecompressWindow(cp, std::span(window).first(cp.window_size)).WithContext("gzip index " + what));
  }
  return index;
}

Result<GzipIndex> GzipIndexV4::Open(const ByteSourcePtr& blob, const std::string& what) {
  const uint64_t size = blob->size();
  if (size == ByteSource::kUnknownSize || size < kHeaderSize) {
    return Corrupt("gzip index " + what + ": too short (" + std::to_string(size) + " bytes)");
  }
  std::vector<uint8_t> header(kHeaderSize);
  OCIFS_RETURN_IF_ERROR(ReadExactly(*blob, 0, header).WithContext("gzip index " + what));
  OCIFS_ASSIGN_OR_RETURN(const uint64_t table, TableLength(header, size, what));
  std::vector<uint8_t> bytes(static_cast<size_t>(table));
  OCIFS_RETURN_IF_ERROR(ReadExactly(*blob, 0, bytes).WithContext("gzip index " + what));
  return ParseTable(bytes, size, std::make_shared<const GzipWindowFile>(blob, what), what);
}

}  // namespace ocifs
