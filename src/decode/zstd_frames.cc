#include "decode/zstd_frames.h"

#define ZSTD_STATIC_LINKING_ONLY
#include <spdlog/spdlog.h>
#include <zstd.h>

#include <algorithm>

#include "base/little_endian.h"
#include "decode/sequential_reader.h"

namespace ocifs {
namespace {

constexpr uint32_t kSeekTableMagic = 0x184D2A5E;
constexpr uint32_t kSeekableFooterMagic = 0x8F92EAB1;
constexpr size_t kFooterSize = 9;
constexpr uint32_t kMaxFrames = 0x8000000;

}  // namespace

Result<std::optional<std::vector<ZstdFrame>>> ReadZstdSeekTable(const ByteSource& blob) {
  const uint64_t size = blob.size();
  if (size == ByteSource::kUnknownSize || size < 8 + kFooterSize) return std::optional<std::vector<ZstdFrame>>();
  std::vector<uint8_t> tail(static_cast<size_t>(std::min<uint64_t>(size, 64 << 10)));
  OCIFS_RETURN_IF_ERROR(ReadExactly(blob, size - tail.size(), tail));
  const uint8_t* footer = tail.data() + tail.size() - kFooterSize;
  if (LoadLe<uint32_t>(footer + 5) != kSeekableFooterMagic) return std::optional<std::vector<ZstdFrame>>();
  auto ignore = [&](const std::string& why) {
    spdlog::warn("ignoring the zstd seek table of {}: {}", blob.Describe(), why);
    return std::optional<std::vector<ZstdFrame>>();
  };
  uint32_t count = LoadLe<uint32_t>(footer);
  uint8_t descriptor = footer[4];
  if (descriptor & 0x7C) return ignore("reserved descriptor bits set");
  if (count > kMaxFrames) return ignore("too many frames (" + std::to_string(count) + ")");
  uint64_t entry = (descriptor & 0x80) ? 12 : 8;
  uint64_t frame_size = 8 + uint64_t{count} * entry + kFooterSize;
  if (frame_size > size) return ignore("table larger than the blob");
  if (frame_size > tail.size()) {
    tail.resize(static_cast<size_t>(frame_size));
    OCIFS_RETURN_IF_ERROR(ReadExactly(blob, size - frame_size, tail));
  }
  const uint8_t* table = tail.data() + tail.size() - frame_size;
  if (LoadLe<uint32_t>(table) != kSeekTableMagic || LoadLe<uint32_t>(table + 4) != frame_size - 8) {
    return ignore("bad skippable frame header");
  }
  std::vector<ZstdFrame> frames;
  frames.reserve(count);
  uint64_t in = 0, out = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = table + 8 + i * entry;
    ZstdFrame f{in, LoadLe<uint32_t>(e), out, LoadLe<uint32_t>(e + 4)};
    in += f.in_size;
    out += f.out_size;
    if (f.in_size == 0) return ignore("frame " + std::to_string(i) + " has no bytes");
    frames.push_back(f);
  }
  if (in != size - frame_size) {
    return ignore("frames add up to " + std::to_string(in) + " bytes, the blob has " +
                  std::to_string(size - frame_size) + " before the table");
  }
  return std::optional<std::vector<ZstdFrame>>(std::move(frames));
}

Result<std::optional<uint64_t>> FirstZstdFrameContentSize(const ByteSource& blob) {
  uint8_t head[ZSTD_FRAMEHEADERSIZE_MAX];
  size_t want = sizeof head;
  if (blob.size() != ByteSource::kUnknownSize) want = static_cast<size_t>(std::min<uint64_t>(want, blob.size()));
  OCIFS_ASSIGN_OR_RETURN(size_t n, blob.ReadAt(0, std::span<uint8_t>(head, want)));
  ZSTD_frameHeader fh;
  if (n < 4 || ZSTD_getFrameHeader(&fh, head, n) != 0 || fh.frameType != ZSTD_frame ||
      fh.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN) {
    return std::optional<uint64_t>();
  }
  return std::optional<uint64_t>(fh.frameContentSize);
}

Result<ZstdFrameScan> ScanZstdFrames(const ByteSource& blob, uint64_t max_frame_out) {
  const uint64_t size = blob.size();
  if (size == ByteSource::kUnknownSize) return ZstdFrameScan{};
  auto corrupt = [&](uint64_t at, const std::string& why) {
    return Corrupt("zstd data of " + blob.Describe() + " corrupt at compressed offset " + std::to_string(at) +
                   ": " + why);
  };
  ZstdFrameScan scan;
  SequentialReader reader(blob, 0);
  uint64_t out = 0;
  while (reader.position() < size) {
    const uint64_t start = reader.position();
    OCIFS_ASSIGN_OR_RETURN(auto head, reader.Peek(ZSTD_FRAMEHEADERSIZE_MAX));
    if (head.size() < 8) return corrupt(start, "truncated frame header");
    uint32_t magic = LoadLe<uint32_t>(head.data());
    if ((magic & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START) {
      reader.Skip(8 + uint64_t{LoadLe<uint32_t>(head.data() + 4)});
      if (reader.position() > size) return corrupt(start, "truncated skippable frame");
      continue;
    }
    ZSTD_frameHeader fh;
    size_t r = ZSTD_getFrameHeader(&fh, head.data(), head.size());
    if (ZSTD_isError(r)) return corrupt(start, std::string("bad frame header: ") + ZSTD_getErrorName(r));
    if (r != 0) return corrupt(start, "truncated frame header");
    if (fh.frameType != ZSTD_frame) return corrupt(start, "unexpected frame type");
    if (fh.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN || fh.frameContentSize > max_frame_out) return scan;
    reader.Skip(fh.headerSize);
    for (bool last = false; !last;) {
      const uint64_t at = reader.position();
      OCIFS_ASSIGN_OR_RETURN(auto b, reader.Peek(3));
      if (b.size() < 3) return corrupt(at, "truncated block header");
      uint32_t v = uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16;
      last = v & 1;
      uint32_t type = (v >> 1) & 3;
      uint32_t block_size = v >> 3;
      if (type == 3) return corrupt(at, "reserved block type");
      if (block_size > ZSTD_BLOCKSIZE_MAX) return corrupt(at, "block size " + std::to_string(block_size) + " too large");
      reader.Skip(3 + (type == 1 ? 1 : uint64_t{block_size}));
      if (reader.position() > size) return corrupt(at, "truncated block");
    }
    if (fh.checksumFlag) reader.Skip(4);
    if (reader.position() > size) return corrupt(start, "truncated frame checksum");
    scan.frames.push_back(ZstdFrame{start, reader.position() - start, out, fh.frameContentSize});
    out += fh.frameContentSize;
  }
  scan.complete = true;
  return scan;
}

}  // namespace ocifs
