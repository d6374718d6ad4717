// ZstdFrameFile: the frame table of a multi-frame zstd blob without a seek
// table, kept beside the cache (docs/zstd-frames-format.md). Locating such a
// blob's frames means walking every block header, which reads the whole blob;
// the file lets a later mount skip that walk (and its fetch, when the blob's
// chunks have been evicted).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "decode/zstd_frames.h"

namespace ocifs {

// Stateless; safe for concurrent use.
class ZstdFrameFile {
 public:
  static constexpr char kMagic[8] = {'O', 'C', 'I', 'F', 'S', 'Z', 'F', 'T'};
  // Version 2 adds flags and, with kHasCrcs, a CRC-32 per frame; version 1
  // files are still read (frames without CRCs).
  static constexpr uint32_t kVersion = 2;
  static constexpr uint32_t kHasCrcs = 1;
  static constexpr uint64_t kMaxFileSize = uint64_t{256} << 20;

  // The file's bytes for `frames` of a blob of `blob_size` compressed bytes:
  // with their CRCs if every frame has one, else without any.
  static std::string Encode(uint64_t blob_size, const std::vector<ZstdFrame>& frames);
  // kCorrupt "<name>: ..." for anything but a well-formed file of version 1
  // or 2 whose frames tile [0, total output) in order and lie in order
  // inside a blob of `blob_size` bytes (it names another blob otherwise).
  [[nodiscard]] static Result<std::vector<ZstdFrame>> Decode(std::string_view bytes, uint64_t blob_size,
                                                             std::string_view name);

  // Temp file + fsync + rename; the directory must exist.
  [[nodiscard]] static Status Write(const std::string& path, uint64_t blob_size, const std::vector<ZstdFrame>& frames);
  // kNotFound if there is no file.
  [[nodiscard]] static Result<std::vector<ZstdFrame>> Read(const std::string& path, uint64_t blob_size);
};

}  // namespace ocifs
