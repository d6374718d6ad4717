#include "decode/zstd_frame_file.h"
#include "base/crc32.h"


#include <algorithm>
#include <cstring>

#include "base/little_endian.h"
#include "base/whole_file.h"

namespace ocifs {
namespace {

constexpr size_t kHeaderBytesV1 = 8 + 4 + 4 + 8;      // magic, version, frame count, blob size
constexpr size_t kHeaderBytesV2 = kHeaderBytesV1 + 4;  // + flags
constexpr size_t kFrameBytes = 4 * 8;
constexpr size_t kCrcBytes = 4;

uint64_t Get(std::string_view in, size_t at, size_t bytes) {
  return LoadLeN(reinterpret_cast<const uint8_t*>(in.data() + at), bytes);
}

uint32_t Crc(std::string_view data) {
  return Crc32(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

}  // namespace

std::string ZstdFrameFile::Encode(uint64_t blob_size, const std::vector<ZstdFrame>& frames) {
  const bool crcs = !frames.empty() && std::all_of(frames.begin(), frames.end(),
                                                   [](const ZstdFrame& f) { return f.crc32.has_value(); });
  std::string out(kMagic, sizeof kMagic);
  AppendLeN(out, kVersion, 4);
  AppendLeN(out, frames.size(), 4);
  AppendLeN(out, blob_size, 8);
  AppendLeN(out, crcs ? kHasCrcs : 0, 4);
  for (const ZstdFrame& f : frames) {
    AppendLeN(out, f.in_offset, 8);
    AppendLeN(out, f.in_size, 8);
    AppendLeN(out, f.out_offset, 8);
    AppendLeN(out, f.out_size, 8);
    if (crcs) AppendLeN(out, *f.crc32, 4);
  }
  AppendLeN(out, Crc(out), 4);
  return out;
}

Result<std::vector<ZstdFrame>> ZstdFrameFile::Decode(std::string_view bytes, uint64_t blob_size,
                                                     std::string_view name) {
  auto corrupt = [&](const std::string& why) { return Corrupt("zstd frame table " + std::string(name) + ": " + why); };
  if (bytes.size() < kHeaderBytesV1 + 4 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    return corrupt("not a frame table");
  }
  if (Crc(bytes.substr(0, bytes.size() - 4)) != Get(bytes, bytes.size() - 4, 4)) return corrupt("CRC mismatch");
  const uint64_t version = Get(bytes, 8, 4);
  if (version != 1 && version != 2) return corrupt("version " + std::to_string(version) + ", not 1 or 2");
  if (version == 2 && bytes.size() < kHeaderBytesV2 + 4) return corrupt("truncated header");
  const uint64_t flags = version == 2 ? Get(bytes, kHeaderBytesV1, 4) : 0;
  if ((flags & ~uint64_t{kHasCrcs}) != 0) return corrupt("unknown flags " + std::to_string(flags));
  const bool crcs = (flags & kHasCrcs) != 0;
  const size_t header = version == 2 ? kHeaderBytesV2 : kHeaderBytesV1;
  const size_t frame_bytes = kFrameBytes + (crcs ? kCrcBytes : 0);
  const uint64_t count = Get(bytes, 12, 4);
  if (bytes.size() != header + count * frame_bytes + 4) return corrupt("length does not match its frame count");
  if (Get(bytes, 16, 8) != blob_size) {
    return corrupt("made for a blob of " + std::to_string(Get(bytes, 16, 8)) + " bytes, not " +
                   std::to_string(blob_size));
  }
  std::vector<ZstdFrame> frames;
  frames.reserve(count);
  uint64_t in_end = 0, out_end = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const size_t at = header + i * frame_bytes;
    ZstdFrame f{Get(bytes, at, 8), Get(bytes, at + 8, 8), Get(bytes, at + 16, 8), Get(bytes, at + 24, 8)};
    if (crcs) f.crc32 = static_cast<uint32_t>(Get(bytes, at + kFrameBytes, 4));
    // Frames in order, not overlapping, inside the blob; outputs back to back from 0.
    if (f.in_offset < in_end || f.in_size == 0 || f.in_offset > blob_size || f.in_size > blob_size - f.in_offset ||
        f.out_offset != out_end || f.out_size > (uint64_t{1} << 62) - out_end) {
      return corrupt("frame " + std::to_string(i) + " is out of place");
    }
    in_end = f.in_offset + f.in_size;
    out_end += f.out_size;
    frames.push_back(f);
  }
  return frames;
}

Status ZstdFrameFile::Write(const std::string& path, uint64_t blob_size, const std::vector<ZstdFrame>& frames) {
  return WriteFileAtomically(path, Encode(blob_size, frames));
}

Result<std::vector<ZstdFrame>> ZstdFrameFile::Read(const std::string& path, uint64_t blob_size) {
  OCIFS_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path, kMaxFileSize, "zstd frame table"));
  return Decode(bytes, blob_size, path);
}

}  // namespace ocifs
