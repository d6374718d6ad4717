// BuildTreeModel: the whole merged filesystem of an image as an FsModel
// (`oci-fs mount --mode tree`).
#pragma once

#include "fuse/fs_model.h"
#include "stack/image_stack.h"

namespace ocifs {

// Every node of the image's merged tree with its type, mode, owner, mtime and
// size; regular files read their bytes from the stack. Write bits are cleared.
[[nodiscard]] Result<FsModel> BuildTreeModel(const ImageStack& stack, int64_t default_mtime);

}  // namespace ocifs
