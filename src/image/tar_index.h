// TarIndex: the list of entries of one layer's tar stream, with the offset of
// each file's data, built by reading headers only.
//
// Formats: ustar, old GNU and v7 headers; GNU long names ('L', 'K'); pax
// extended headers ('x' per entry, 'g' global, POSIX semantics; keywords path,
// linkpath, size, uid, gid, mtime, GNU.sparse.*); base-256 numbers; signed and
// unsigned header checksums; GNU sparse files ('S', pax 0.0/0.1/1.0).
// Every length read from the stream is bounded (metadata <= 1 MiB per header).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "image/tar_entry.h"
#include "ocifs/byte_source.h"

namespace ocifs {

struct TarIndexOptions {
  // Called after each entry is parsed (and added); return false to stop early
  // (the index is then marked incomplete). Runs on the Build caller's thread.
  std::function<bool(const TarEntry&)> on_entry;
  // Where to start reading (a multiple of 512): an entry's header_offset,
  // to parse that one entry again (single_entry). Offsets stay the layer's.
  uint64_t start_offset = 0;
  // Parse one entry at start_offset and stop (the index is then incomplete,
  // with that entry, or none if the archive ends there), without checking
  // that its data exists (reads of it do): one read of its headers.
  bool single_entry = false;
};

// Thread safety: immutable after Build/Load; safe for concurrent reads.
class TarIndex {
 public:
  // Bound on the data of a long-name or pax header.
  static constexpr uint64_t kMaxMetadataSize = uint64_t{1} << 20;

  // Reads `layer` (a decompressed tar stream) forward from offset 0, header by
  // header, jumping over file data (reading a small read-ahead window at most).
  // `layer.size()` may be kUnknownSize: truncation is then found by a short read.
  // Errors: kCorrupt naming the layer (layer.Describe()) and the offset for a
  // bad checksum, a truncated header, data past the end of the layer, malformed
  // pax records; kUnsupported for multi-volume archives and unknown sparse versions;
  // the source's own error if a read fails.
  [[nodiscard]] static Result<TarIndex> Build(const ByteSource& layer, const TarIndexOptions& options = {});

  // In archive order; a path may appear more than once (the later one wins).
  const std::vector<TarEntry>& entries() const { return entries_; }
  // True if Build reached the end-of-archive marker (or a clean EOF after a
  // complete entry); false if on_entry stopped it.
  bool complete() const { return complete_; }
  // layer.Describe() of the source it was built from (for messages).
  const std::string& source_name() const { return source_name_; }
  // True if every entry's header_offset is known (built, or loaded from a
  // version 2 file); false for a version 1 file.
  bool has_header_offsets() const { return has_header_offsets_; }

  // Writes the index to `path` atomically (a temp file in the same directory,
  // fsync, rename). Format: docs/tar-index-format.md. kIoError on failure.
  [[nodiscard]] Status Save(const std::string& path) const;
  // Reads an index written by Save. kNotFound if the file does not exist;
  // kCorrupt for a wrong magic or version, a bad checksum, or a malformed body.
  [[nodiscard]] static Result<TarIndex> Load(const std::string& path);
  // A complete index with no entries: the place of a layer that is no tar
  // (a bare disk layer, image/bare_disk.h) in a merged tree.
  static TarIndex Empty(std::string source_name);

 private:
  friend class TarIndexFile;
  TarIndex() = default;

  std::vector<TarEntry> entries_;
  bool complete_ = false;
  bool has_header_offsets_ = true;
  std::string source_name_;
};

}  // namespace ocifs
