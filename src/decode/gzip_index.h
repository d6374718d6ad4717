// GzipIndex: the checkpoints that make a gzip layer random-access (zlib's
// zran technique), and their on-disk form (docs/gzip-index-format.md).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "ocifs/byte_source.h"
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
  std::vector<uint8_t> zwindow{};  // the window, zlib-compressed (compress2), when held in memory;
  // otherwise (an index loaded from its file) it stays in the file, read on use:
  std::shared_ptr<const class GzipWindowFile> window_file{};
  uint64_t zwindow_offset = 0;    // in window_file
  uint32_t zwindow_length = 0;
  // The CRC-32 of the compressed window's bytes (version 4: the window is
  // read from a blob that may be wrong); checked when read from window_file.
  std::optional<uint32_t> zwindow_crc{};
  // A checkpoint inside a deflate block (version 5, kind 2; header_bits > 0):
  // (in, bits) is the start of a literal/length code, and decoding restarts by
  // first feeding the block's header, `header_bits` bits packed from bit 0 of
  // block_header[0] (deflate's bit order), then the codes from (in, bits).
  // block_header holds them when the window is held in memory (zwindow);
  // with window_file, the window's place holds the header's
  // HeaderBytes() bytes first, then the compressed window (kept together,
  // under one CRC-32), and block_header stays empty.
  uint16_t header_bits = 0;
  std::vector<uint8_t> block_header{};
  bool inside_block() const { return header_bits != 0; }
  size_t HeaderBytes() const { return (header_bits + 7u) / 8u; }
};

// An index file whose checkpoint windows are read when a read needs them, so a
// loaded index costs a few dozen bytes per checkpoint in memory, not up to
// 32 KiB: a local file, or a version 4 index blob read lazily through the
// chunk cache (its windows fetched when a read needs their checkpoint).
// Thread safety: Read is safe for concurrent use (pread, ByteSource::ReadAt).
class GzipWindowFile {
 public:
  GzipWindowFile(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  // Windows in `blob` (shared); `what` names it in errors.
  GzipWindowFile(ByteSourcePtr blob, std::string what) : blob_(std::move(blob)), path_(std::move(what)) {}
  // `length` bytes at `offset`; kCorrupt if the file ends first (a blob's
  // fetch errors as they are: kUnavailable, kIoError, ...).
  [[nodiscard]] Result<std::vector<uint8_t>> Read(uint64_t offset, uint32_t length) const;

 private:
  UniqueFd fd_;
  ByteSourcePtr blob_;  // set: read from it, not fd_
  std::string path_;
};

// Compresses a window (<= 32 KiB) for GzipCheckpoint::zwindow.
std::vector<uint8_t> CompressWindow(std::span<const uint8_t> window);
// Inflates cp's window (from memory or its file) into `out` (cp.window_size
// bytes); kCorrupt if it does not inflate to exactly that many bytes. With
// `header`, also sets it to cp's block header (empty unless inside_block()),
// read with the window.
[[nodiscard]] Status DecompressWindow(const GzipCheckpoint& cp, std::span<uint8_t> out,
                                      std::vector<uint8_t>* header = nullptr);

// A complete index of one gzip blob. A value type; no internal locking.
struct GzipIndex {
  friend class GzipIndexV4;  // the table-first layout (gzip_index_v4.h) shares the section parsers
  static constexpr size_t kMaxTail = 16;
  // Where a checkpoint's compressed window lies in an index file.
  struct WindowPlace {
    uint64_t offset = 0;
    uint32_t length = 0;  // 0: no window
  };

  // The checksum blocks of version 3: a power of two in [kMinBlockSize, kMaxBlockSize].
  static constexpr uint32_t kDefaultBlockSize = 65536;
  static constexpr uint32_t kMinBlockSize = 4096;
  static constexpr uint32_t kMaxBlockSize = 16u << 20;

  uint64_t compressed_size = 0;
  uint64_t decompressed_size = 0;
  uint64_t spacing = 0;              // checkpoint_spacing used to build it
  std::vector<uint8_t> tail;         // the blob's last <= 16 bytes: identity check
  std::vector<GzipCheckpoint> checkpoints;  // sorted by out; [0] = {out 0, member start, in 0}
  // Runs of zeros in the decompressed layer as {start, end}: sorted, disjoint,
  // non-empty, within decompressed_size (a raw disk's empty space; version 2).
  // zero_runs_known: the index gives them, so bytes outside every run are
  // known not to be zero runs of >= 64 KiB. False: a mount learns them as it
  // inflates (Version1Zeros); the runs are then neither written nor read (a
  // version 1 file, or a version 3 file with flag bit 0 set).
  std::vector<std::pair<uint64_t, uint64_t>> zero_runs;
  bool zero_runs_known = true;
  // Checksums of the decompressed layer (version 3): the CRC-32 (zlib crc32)
  // of each block_size bytes from offset 0, the last block possibly short;
  // block_crcs.size() == ceil(decompressed_size / block_size). block_size 0:
  // none (a version 1 or 2 file), and the index is written as version 2 (or
  // 1 when !zero_runs_known).
  uint32_t block_size = 0;
  std::vector<uint32_t> block_crcs;
  bool has_checksums() const { return block_size != 0; }
  // Whether a checkpoint lies inside a deflate block (only version 5 holds one).
  bool has_inside_block_checkpoints() const {
    return std::any_of(checkpoints.begin(), checkpoints.end(), [](const GzipCheckpoint& cp) { return cp.inside_block(); });
  }
  // Whether block_size is acceptable (0, or a power of two in [kMinBlockSize, kMaxBlockSize]).
  static bool ValidBlockSize(uint32_t size);

  // Fails if a window kept in its file cannot be read back, or (kInvalidArgument)
  // if the checksums do not fit decompressed_size.
  [[nodiscard]] Result<std::vector<uint8_t>> Serialize() const;

 private:
  // The file's bytes for `cps`, handed to `sink` a part at a time; with
  // `windows`, also where each checkpoint's compressed window lies in them.
  [[nodiscard]] Status Emit(std::span<const GzipCheckpoint> cps,
                            const std::function<Status(std::span<const uint8_t>)>& sink,
                            std::vector<WindowPlace>* windows = nullptr) const;

  // The version 2 section at body[pos] (count, then {start, length} each) into
  // index.zero_runs; advances pos. kCorrupt if it is inconsistent.
  [[nodiscard]] static Status ParseZeroRuns(std::span<const uint8_t> body, size_t& pos, GzipIndex& index);
  // The version 3 section at body[pos] (block size, count, CRCs) into
  // index.block_size and block_crcs; advances pos. kCorrupt if it is inconsistent.
  [[nodiscard]] static Status ParseChecksums(std::span<const uint8_t> body, size_t& pos, GzipIndex& index);

  // Writes the file (see Save); with `windows` and `keep`, also where the
  // windows went and the written file, open for reading.
  [[nodiscard]] Status Write(const std::string& path, std::span<const GzipCheckpoint> cps,
                             std::vector<WindowPlace>* windows, UniqueFd* keep) const;

 public:
  // Parses and validates bytes written by Serialize() (version 1, 2 or 3);
  // `what` names the file in errors. kCorrupt on any inconsistency (file
  // checksum, size, bounds, ordering, counts that do not fit the sizes).
  // Every window is inflated once to check it; keep_windows false keeps no
  // copy of them (zwindow empty, zwindow_offset/length place each in `bytes`:
  // for Load, which reads them from its file).
  [[nodiscard]] static Result<GzipIndex> Parse(std::span<const uint8_t> bytes, const std::string& what,
                                               bool keep_windows = true);

  // Writes path.tmp.<pid>.<n>, fsyncs it, renames it over `path`, fsyncs the folder.
  [[nodiscard]] Status Save(const std::string& path) const;
  // Save with `cps` in place of `checkpoints` (the caller's, not copied; the
  // file is written as it is produced, never whole in memory).
  [[nodiscard]] Status SaveWith(const std::string& path, std::span<const GzipCheckpoint> cps) const;
  // The file SaveWithPlaces wrote, open for reading (opened before its
  // rename, so a later replacement of its path does not matter), and where
  // each checkpoint's window lies in it.
  struct SavedWindows {
    std::shared_ptr<const GzipWindowFile> file;
    std::vector<WindowPlace> places;  // one per checkpoint saved
    // Points `cps` (the checkpoints saved, in order) at their windows in the
    // file and frees the copies in memory: nothing is read back or checked
    // again, as Load would.
    void ApplyTo(std::span<GzipCheckpoint> cps) const;
  };
  // SaveWith, keeping the file and the windows' places.
  [[nodiscard]] Result<SavedWindows> SaveWithPlaces(const std::string& path,
                                                    std::span<const GzipCheckpoint> cps) const;
  // kNotFound if the file does not exist; kCorrupt if it is not a valid index.
  // Every window is checked, then left in the file (GzipCheckpoint::window_file).
  [[nodiscard]] static Result<GzipIndex> Load(const std::string& path);
};

}  // namespace ocifs
