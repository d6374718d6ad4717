// FsModel: the inode table a mount shows, independent of FUSE.
//
// Built once before the mount starts and immutable afterwards, so every
// FUSE thread reads it without locks. Inode numbers are index + 1 (1 = root,
// FUSE_ROOT_ID). File contents are ByteSources owned (shared) by the nodes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ocifs/byte_source.h"

namespace ocifs {

struct FsNode {
  uint64_t ino = 0;
  uint64_t parent = 0;
  mode_t mode = 0;        // S_IFMT type bits | permission bits (write bits always cleared)
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 0;      // seconds since the epoch
  uint64_t size = 0;      // bytes; a symlink's target length
  dev_t rdev = 0;
  std::string link_target;  // symlinks
  ByteSourcePtr content;    // regular files
  std::vector<std::pair<std::string, uint64_t>> children;  // directories: (name, ino), sorted by name
};

class FsModel {
 public:
  FsModel();  // just an empty root directory (mode 0555)

  FsNode& root() { return nodes_[0]; }
  // Adds a child of `parent` and returns its inode number. Children must be
  // added before Seal(); names must be unique within a directory.
  uint64_t Add(uint64_t parent, std::string name, FsNode node);
  // Sorts directory entries; call once after the last Add().
  void Seal();

  const FsNode* Get(uint64_t ino) const;
  // The child `name` of directory `parent`, or nullptr.
  const FsNode* Lookup(uint64_t parent, std::string_view name) const;
  size_t node_count() const { return nodes_.size(); }
  // Sum of all file sizes (bytes); valid after Seal().
  uint64_t total_bytes() const { return total_bytes_; }

  // A model with one read-only regular file `name` (mode 0444) at the root.
  static FsModel SingleFile(std::string name, ByteSourcePtr content, int64_t mtime);

 private:
  std::vector<FsNode> nodes_;
  uint64_t total_bytes_ = 0;
};

}  // namespace ocifs
