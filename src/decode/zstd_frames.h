// Locating the frames of a zstd blob: from a seekable-format seek table at its
// end, or by walking frame and block headers from the start.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ocifs/byte_source.h"

namespace ocifs {

// One zstd frame. Units: bytes; in_* compressed, out_* decompressed.
struct ZstdFrame {
  ZstdFrame() = default;
  ZstdFrame(uint64_t in_off, uint64_t in_len, uint64_t out_off, uint64_t out_len,
            std::optional<uint32_t> crc = std::nullopt)
      : in_offset(in_off), in_size(in_len), out_offset(out_off), out_size(out_len), crc32(crc) {}

  uint64_t in_offset = 0;
  uint64_t in_size = 0;
  uint64_t out_offset = 0;
  uint64_t out_size = 0;
  // CRC-32 (zlib's) of the frame's decoded bytes, when a frame table carries
  // one (an acceleration artifact's); ZstdFrameSource then checks every
  // decode against it.
  std::optional<uint32_t> crc32;
};

struct ZstdFrameScan {
  // True if every data frame was located and had a content size <= the limit;
  // then `frames` lists all of them (skippable frames left out).
  bool complete = false;
  std::vector<ZstdFrame> frames;
};

// Reads the seek table of the zstd seekable format (a skippable frame with
// magic 0x184D2A5E ending in the footer magic 0x8F92EAB1) from the end of
// `blob`: one range read of its last 64 KiB, a second if the table is larger.
// nullopt = no seek table, or one inconsistent with the blob (logged).
// Checksums in the table are not verified (frames may carry their own).
[[nodiscard]] Result<std::optional<std::vector<ZstdFrame>>> ReadZstdSeekTable(const ByteSource& blob);

// The content size its header declares for the first frame of `blob`, from one
// read of at most 18 bytes; nullopt if the blob starts with a skippable frame,
// the size is not declared, or the header does not parse (ScanZstdFrames then
// names what is wrong). A first frame above 32 MiB makes the blob a stream
// whatever its end holds (no table lists frames that large as seekable), so a
// mount need not read the seek table nor walk 4 MiB to learn it.
[[nodiscard]] Result<std::optional<uint64_t>> FirstZstdFrameContentSize(const ByteSource& blob);

// Walks frames from the start, reading `blob` in 4 MiB pieces. Stops early
// (complete = false) at the first frame without a content size or with one
// above `max_frame_out`. kCorrupt names the offset of a malformed or
// truncated header. `blob` must have a known size.
[[nodiscard]] Result<ZstdFrameScan> ScanZstdFrames(const ByteSource& blob, uint64_t max_frame_out);

}  // namespace ocifs
