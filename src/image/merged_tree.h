// MergedTree: the filesystem of an image, its layers applied bottom to top as
// the OCI image spec's "Applying changesets" says.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "image/tar_entry.h"
#include "image/tar_index.h"

namespace ocifs {

// One path of the merged filesystem. `layer` is the index (bottom = 0) of the
// layer whose data this is. Hardlinks are resolved: a hardlink to a file is a
// kFile with its target's data_offset, size and layer (so type is never kHardlink).
struct Node {
  TarEntry entry;
  size_t layer = 0;
};

// Thread safety: immutable after Build; safe for concurrent reads. Pointers it
// returns live as long as the tree (copying the tree copies the nodes).
class MergedTree {
 public:
  // Symlink hops Resolve follows before giving up (Linux's MAXSYMLINKS).
  static constexpr int kMaxSymlinkHops = 40;

  // Applies each layer in order: first its whiteouts against the layers below
  // (".wh.<name>" deletes <name>; ".wh..wh..opq" empties its directory; other
  // ".wh..wh.*" names are ignored; whiteouts never show in the tree and never
  // hide entries of their own layer), then its entries in archive order: a later
  // entry replaces an earlier one of the same path, except that a directory over
  // a directory only updates its attributes; a non-directory over a directory
  // drops the directory's subtree. Missing parents are created as directories
  // (mode 0755, owner 0), replacing a non-directory of that name. A hardlink
  // copies the node its target names at that point (kCorrupt naming the layer if
  // the target is missing or a directory). The root is a directory (0755) unless
  // a layer gives it attributes; a non-directory entry for the root is ignored.
  // `layers_bottom_to_top` must not hold null pointers (kInvalidArgument).
  [[nodiscard]] static Result<MergedTree> Build(const std::vector<const TarIndex*>& layers_bottom_to_top);

  // The node at a normalized path ("" = root), without following symlinks; null if absent.
  const Node* Lookup(std::string_view path) const;
  // The children of a directory, sorted by name (byte order); empty if `dir`
  // is not a directory.
  std::vector<const Node*> Children(std::string_view dir) const;
  // Follows symlinks in every component of `path` (normalized or with a leading
  // "/"), inside the image: absolute targets start at the image root, ".." stops
  // at the root. kNotFound "<path>: not in the image" / "... is not a directory";
  // kInvalidArgument after kMaxSymlinkHops hops (a loop). The result may be any type.
  [[nodiscard]] Result<const Node*> Resolve(std::string_view path) const;

  // Every node, sorted by path; the root first.
  const std::vector<Node>& nodes() const { return nodes_; }

 private:
  std::vector<Node> nodes_;            // sorted by entry.path
  std::vector<uint32_t> child_begin_;  // children of nodes_[i]: child_ids_[child_begin_[i], child_begin_[i + 1])
  std::vector<uint32_t> child_ids_;
};

}  // namespace ocifs
