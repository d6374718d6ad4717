// TarEntry: one member of a layer's tar stream, as the tar index records it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ocifs {

enum class EntryType { kFile, kDirectory, kSymlink, kHardlink, kCharDevice, kBlockDevice, kFifo };

// "file", "directory", ... for messages.
std::string_view EntryTypeName(EntryType type);

// A run of data in a sparse file. Units: bytes of the logical (expanded) file.
struct SparseRun {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const SparseRun&) const = default;
};

// Value type. Units: bytes and seconds since the epoch.
struct TarEntry {
  // Normalized: no leading "./" or "/", no trailing "/", no "." or ".." components
  // ("a/../b" is "b"; ".." at the top stays at the top); "" is the root.
  std::string path;
  EntryType type = EntryType::kFile;
  uint32_t mode = 0;        // permission bits only (07777)
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 0;        // seconds (PAX fractions dropped)
  // Logical file size (0 for everything but files). For a sparse file the
  // size of the expanded file, holes included.
  uint64_t size = 0;
  // Offset of the file's data in the decompressed layer. For a sparse file the
  // data runs are stored back to back from here, in `sparse_map` order.
  uint64_t data_offset = 0;
  // Offset of the entry's first header in the decompressed layer: its own
  // header, or the first of the extended headers (pax 'x', GNU 'L'/'K') that
  // precede it. <= data_offset. Lets one entry be parsed again from its
  // headers alone (TarIndexOptions::start_offset). 0 when unknown (a version
  // 1 index file, docs/tar-index-format.md).
  uint64_t header_offset = 0;
  // Symlink: the target exactly as stored (not normalized; resolved by MergedTree).
  // Hardlink: the normalized path of the target entry.
  std::string link_target;
  uint32_t dev_major = 0, dev_minor = 0;
  // Sparse files (GNU 'S', PAX GNU.sparse 0.0/0.1/1.0): `sparse` is set and
  // `sparse_map` lists the data runs, sorted and disjoint, each inside [0, size);
  // everything else reads as zeros. Stored bytes = sum of the run lengths.
  bool sparse = false;
  std::vector<SparseRun> sparse_map;

  // Bytes of this entry's data in the layer (== size unless sparse).
  uint64_t StoredSize() const;
  bool operator==(const TarEntry&) const = default;
};

// Normalizes a path from a tar header or a user as described for
// TarEntry::path. Never fails; "" for "/", "./", ".".
std::string NormalizePath(std::string_view raw);

// The last component of a normalized path ("a/b" -> "b", "a" -> "a").
std::string_view BaseName(std::string_view path);
// The parent of a normalized path ("a/b" -> "a", "a" -> "", "" -> "").
std::string_view DirName(std::string_view path);

}  // namespace ocifs
