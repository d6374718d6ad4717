// AccelTarIndex: one layer's tar index taken from an acceleration artifact
// (docs/accel-format.md, "Trust"), trusted entry by entry. The mount lists
// the layer from it without reading a tar header; a regular file's bytes are
// served only once the file's headers, read again at the offset the index
// gives (TarIndexOptions::single_entry: one read, usually 512 bytes to 4 KiB),
// parse to the very entry the index lists. On a mismatch it logs once, walks
// the layer's tar as a mount without the artifact does (saving that index as
// the layer's side file, which later mounts load instead), and serves every
// file of the layer from the walked index from then on: never wrong bytes.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "image/tar_index.h"
#include "ocifs/byte_source.h"
#include "ocifs/status.h"

namespace ocifs {

// The bytes of the regular file `entry` of the tar stream `layer`: a slice of
// it, or the expansion of a sparse file. kCorrupt naming `name` if the entry
// does not fit inside the layer.
[[nodiscard]] Result<ByteSourcePtr> TarEntryContent(ByteSourcePtr layer, const TarEntry& entry, std::string name);

// Thread safety: safe for concurrent use; mu_ guards what a mismatch changes.
// Shared by the sources Content hands out, which keep it (and the layer)
// alive; a source's own lock is taken before mu_ (Check runs under it).
class AccelTarIndex : public std::enable_shared_from_this<AccelTarIndex> {
 public:
  // Loads the piece kept at `path` (docs/tar-index-format.md) and checks it
  // as far as it can be without reading the layer: version 2 (header offsets
  // known), complete, each entry's headers before its data, and its data
  // within `decoded`'s size when that is known. `decoded` is the layer's tar
  // stream; `walked_path` is where a walked index is saved after a mismatch;
  // `what` names the layer and the artifact in messages. kCorrupt naming
  // the fault; kNotFound if there is no file.
  [[nodiscard]] static Result<std::shared_ptr<AccelTarIndex>> Load(const std::string& path, ByteSourcePtr decoded,
                                                                   std::string walked_path, std::string what);

  // The index as the artifact gives it: what the layer is listed from.
  const std::shared_ptr<const TarIndex>& index() const { return index_; }

  // The source of the regular file `claimed` (an entry of index()), named
  // `name`, of claimed.size bytes: its first read (or extent query) checks
  // the entry (Check) and serves the entry Check returns. Never fails itself.
  ByteSourcePtr Content(const TarEntry& claimed, std::string name) const;

  // The entry of the layer's tar to serve `claimed` from: `claimed` itself if
  // its headers at claimed.header_offset parse to it; after a mismatch, the
  // regular file of that path the walk finds (kCorrupt if there is none).
  // A read that fails (the registry, a cancelled pass) is returned as is and
  // proves nothing: the next call checks again.
  [[nodiscard]] Result<TarEntry> Check(const TarEntry& claimed) const;

  // True once a mismatch dropped the artifact's index (for tests and stats).
  bool dropped() const;

 private:
  AccelTarIndex(std::shared_ptr<const TarIndex> index, ByteSourcePtr decoded, std::string walked_path,
                std::string what);
  // The walked index, walking the layer first if no one has yet. Takes mu_.
  Result<std::shared_ptr<const TarIndex>> Walked(const std::string& why) const;

  const std::shared_ptr<const TarIndex> index_;
  const ByteSourcePtr decoded_;
  const std::string walked_path_;
  const std::string what_;
  mutable std::mutex mu_;
  mutable std::shared_ptr<const TarIndex> walked_;  // guarded by mu_; set by the first mismatch
};

}  // namespace ocifs
