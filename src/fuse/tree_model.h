// BuildTreeModel: the whole merged filesystem of an image as an FsModel
// (`oci-fs mount --mode tree`).
#pragma once

#include "fuse/fs_model.h"
#include "stack/image_stack.h"

namespace ocifs {

// Every node of the image's merged tree with its type, mode, owner, mtime and
// size; regular files read their bytes from the stack. Write bits are cleared.
// Each bare disk layer (ImageStack::disks()) is the file NAME.img at the
// root, read as the guest sees it (qcow2 translated); kCorrupt if the tree
// has a file of that name already.
[[nodiscard]] Result<FsModel> BuildTreeModel(const ImageStack& stack, int64_t default_mtime);

}  // namespace ocifs
