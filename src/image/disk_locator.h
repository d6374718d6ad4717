// LocateDisk: the VM disk file of a KubeVirt containerDisk image.
#pragma once

#include <string_view>

#include "image/merged_tree.h"

namespace ocifs {

// KubeVirt's containerDisk contract: the image holds exactly one regular file
// directly under "disk/" (a symlink there to a regular file inside the image
// counts as that file; directories, devices and dangling links are ignored;
// names of the same data -- symlinks, hardlinks -- count once). With `disk_path` ("disk/x.img" or
// "/disk/x.img"), that path instead, following symlinks.
//
// Returns the node whose data is the disk (for a symlink, its target's node).
// Errors:
//   kNotFound        "image has no disk: no regular file under /disk (use --disk-path)"
//   kInvalidArgument "image has 2 files under /disk (disk/a.img, disk/b.qcow2): pick one with --disk-path"
//   kNotFound        "--disk-path disk/x: not in the image"
//   kInvalidArgument "--disk-path disk: is a directory" / "...: is a <type>, not a regular file"
// Thread safety: reads the tree only.
[[nodiscard]] Result<const Node*> LocateDisk(const MergedTree& tree, std::string_view disk_path = "");

}  // namespace ocifs
