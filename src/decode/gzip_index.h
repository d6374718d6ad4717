// GzipIndex: the checkpoints that make a gzip layer random-access (zlib's
// zran technique), and their on-disk form (docs/gzip-index-format.md).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

// A place where decompression can restart.
// Units: `out` is a decompressed byte offset; `in` a compressed byte offset.
struct GzipCheckpoint {
  static constexpr uint32_t kWindowSize = 32768;

  uint64_t out = 0;
  // member_start: `in` is the first byte of a gzip member header; decompress
  // it as gzip, no window needed. Otherwise `in` is inside a deflate stream at
  // a block boundary: the first `bits` (0..7) bits to decode are the high bits
  // of byte in - 1, then byte `in` onwards; the stream may refer back to the
  // `window_size` bytes of output before `out`.
  bool member_start = false;
  uint64_t in = 0;
  uint8_t bits = 0;
  uint32_t window_size = 0;       // 0..kWindowSize bytes, before compression
  std::vector<uint8_t> zwindow;   // the window, zlib-compressed (compress2)
};

// Compresses a window (<= 32 KiB) for GzipCheckpoint::zwindow.
std::vector<uint8_t> CompressWindow(std::span<const uint8_t> window);
// Inflates cp.zwindow into `out` (cp.window_size bytes); kCorrupt if it does
// not inflate to exactly that many bytes.
[[nodiscard]] Status DecompressWindow(const GzipCheckpoint& cp, std::span<uint8_t> out);

// A complete index of one gzip blob. A value type; no internal locking.
struct GzipIndex {
  static constexpr size_t kMaxTail = 16;

  uint64_t compressed_size = 0;
  uint64_t decompressed_size = 0;
  uint64_t spacing = 0;              // checkpoint_spacing used to build it
  std::vector<uint8_t> tail;         // the blob's last <= 16 bytes: identity check
  std::vector<GzipCheckpoint> checkpoints;  // sorted by out; [0] = {out 0, member start, in 0}

  std::vector<uint8_t> Serialize() const;
  // Parses and validates bytes written by Serialize(); `what` names the file
  // in errors. kCorrupt on any inconsistency (checksum, bounds, ordering).
  [[nodiscard]] static Result<GzipIndex> Parse(std::span<const uint8_t> bytes, const std::string& what);

  // Writes path.tmp.<pid>.<n>, fsyncs it, renames it over `path`, fsyncs the folder.
  [[nodiscard]] Status Save(const std::string& path) const;
  // kNotFound if the file does not exist; kCorrupt if it is not a valid index.
  [[nodiscard]] static Result<GzipIndex> Load(const std::string& path);
};

}  // namespace ocifs
