// TarIndexFile: the on-disk form of a TarIndex (docs/tar-index-format.md):
// magic, version, flags, a varint-encoded body with prefix-compressed paths,
// and a CRC-32C trailer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "image/tar_index.h"

namespace ocifs {

// Stateless; safe for concurrent use.
class TarIndexFile {
 public:
  static constexpr char kMagic[8] = {'O', 'C', 'I', 'F', 'S', 'T', 'A', 'R'};
  // Written: 2 (each entry's header offset). Read: 1 and 2.
  static constexpr uint32_t kVersion = 2;
  // Bound on the size of an index file Load will read.
  static constexpr uint64_t kMaxFileSize = uint64_t{1} << 30;

  // `source_name`, if given, replaces the index's (an index shipped in an
  // acceleration artifact names its layer, not the builder's source).
  static std::string Encode(const TarIndex& index, std::optional<std::string_view> source_name = std::nullopt);
  // kCorrupt "<name>: ..." for anything but a well-formed file of this version.
  [[nodiscard]] static Result<TarIndex> Decode(std::string_view bytes, std::string_view name);

  // Temp file + fsync + rename; the directory must exist.
  [[nodiscard]] static Status Write(const std::string& path, const TarIndex& index);
  [[nodiscard]] static Result<TarIndex> Read(const std::string& path);
};

// CRC-32C (Castagnoli), as in iSCSI and ext4: crc32c("123456789") == 0xe3069283.
uint32_t Crc32c(std::string_view data);

}  // namespace ocifs
