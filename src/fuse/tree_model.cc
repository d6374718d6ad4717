#include "fuse/tree_model.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

namespace ocifs {
namespace {

mode_t TypeBits(EntryType type) {
  switch (type) {
    case EntryType::kFile: case EntryType::kHardlink: return S_IFREG;
    case EntryType::kDirectory: return S_IFDIR;
    case EntryType::kSymlink: return S_IFLNK;
    case EntryType::kCharDevice: return S_IFCHR;
    case EntryType::kBlockDevice: return S_IFBLK;
    case EntryType::kFifo: return S_IFIFO;
  }
  return S_IFREG;
}

Status AddChildren(const ImageStack& stack, const std::string& dir, uint64_t dir_ino, FsModel* model,
                   int depth) {
  if (depth > 4096) return Corrupt("directory tree of the image is deeper than 4096 levels");
  for (const Node* child : stack.tree().Children(dir)) {
    const TarEntry& e = child->entry;
    FsNode node;
    node.mode = TypeBits(e.type) | (e.mode & 07777);
    node.uid = e.uid;
    node.gid = e.gid;
    node.mtime = e.mtime;
    node.size = e.size;
    node.link_target = e.link_target;
    if (e.type == EntryType::kCharDevice || e.type == EntryType::kBlockDevice) {
      node.rdev = makedev(e.dev_major, e.dev_minor);
    }
    if (S_ISREG(node.mode)) {
      OCIFS_ASSIGN_OR_RETURN(node.content, stack.FileContent(*child));
      node.size = node.content->size();
    }
    std::string name = e.path.substr(e.path.rfind('/') == std::string::npos ? 0 : e.path.rfind('/') + 1);
    uint64_t ino = model->Add(dir_ino, name, std::move(node));
    if (e.type == EntryType::kDirectory) OCIFS_RETURN_IF_ERROR(AddChildren(stack, e.path, ino, model, depth + 1));
  }
  return Status::Ok();
}

}  // namespace

Result<FsModel> BuildTreeModel(const ImageStack& stack, int64_t default_mtime) {
  FsModel model;
  model.root().mtime = default_mtime;
  if (const Node* root = stack.tree().Lookup(""); root != nullptr) {
    model.root().mode = S_IFDIR | (root->entry.mode & 07555);
    if (root->entry.mode == 0) model.root().mode = S_IFDIR | 0555;
    model.root().mtime = root->entry.mtime;
  }
  OCIFS_RETURN_IF_ERROR(AddChildren(stack, "", 1, &model, 0));
  // Bare disk layers (KubeVirt VM exports, ORAS-pushed disks): each as NAME.img at the root.
  for (const BareDiskLayer& disk : stack.disks()) {
    const std::string name = disk.name + ".img";
    if (stack.tree().Lookup(name) != nullptr) {
      return Corrupt("disk " + disk.name + " of layer " + disk.digest + ": the image already has a file /" + name);
    }
    FsNode node;
    node.mode = S_IFREG | 0444;
    node.mtime = model.root().mtime;
    OCIFS_ASSIGN_OR_RETURN(node.content, stack.OpenBareDisk(disk));
    node.size = node.content->size();
    model.Add(1, name, std::move(node));
  }
  model.Seal();
  return model;
}

}  // namespace ocifs
