#include "fuse/fs_model.h"

#include <sys/stat.h>

#include <algorithm>

namespace ocifs {

FsModel::FsModel() {
  FsNode root;
  root.ino = 1;
  root.parent = 1;
  root.mode = S_IFDIR | 0555;
  nodes_.push_back(std::move(root));
}

uint64_t FsModel::Add(uint64_t parent, std::string name, FsNode node) {
  node.ino = nodes_.size() + 1;
  node.parent = parent;
  node.mode &= ~static_cast<mode_t>(S_IWUSR | S_IWGRP | S_IWOTH);
  if (S_ISLNK(node.mode)) node.size = node.link_target.size();
  if (S_ISDIR(node.mode)) node.size = 0;
  uint64_t ino = node.ino;
  nodes_.push_back(std::move(node));
  nodes_[parent - 1].children.emplace_back(std::move(name), ino);
  return ino;
}

void FsModel::Seal() {
  total_bytes_ = 0;
  for (auto& n : nodes_) {
    std::sort(n.children.begin(), n.children.end());
    if (S_ISREG(n.mode)) total_bytes_ += n.size;
  }
}

const FsNode* FsModel::Get(uint64_t ino) const {
  if (ino == 0 || ino > nodes_.size()) return nullptr;
  return &nodes_[ino - 1];
}

const FsNode* FsModel::Lookup(uint64_t parent, std::string_view name) const {
  const FsNode* dir = Get(parent);
  if (dir == nullptr || !S_ISDIR(dir->mode)) return nullptr;
  if (name == ".") return dir;
  if (name == "..") return Get(dir->parent);
  auto it = std::lower_bound(dir->children.begin(), dir->children.end(), name,
                             [](const auto& child, std::string_view n) { return child.first < n; });
  if (it == dir->children.end() || it->first != name) return nullptr;
  return Get(it->second);
}

FsModel FsModel::SingleFile(std::string name, ByteSourcePtr content, int64_t mtime) {
  FsModel model;
  model.root().mtime = mtime;
  FsNode file;
  file.mode = S_IFREG | 0444;
  file.mtime = mtime;
  file.size = content->size();
  file.content = std::move(content);
  model.Add(1, std::move(name), std::move(file));
  model.Seal();
  return model;
}

}  // namespace ocifs
