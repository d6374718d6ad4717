#include "image/disk_locator.h"

#include <algorithm>
#include <string>
#include <vector>

namespace ocifs {
namespace {

constexpr std::string_view kDiskDir = "disk";
constexpr size_t kMaxNamesInMessage = 5;

Result<const Node*> LocateExplicit(const MergedTree& tree, std::string_view disk_path) {
  std::string shown(disk_path);
  auto resolved = tree.Resolve(disk_path);
  if (!resolved.ok()) {
    if (resolved.status().code() == Code::kNotFound) return NotFound("--disk-path " + shown + ": not in the image");
    return resolved.status().WithContext("--disk-path " + shown);
  }
  const Node* n = *resolved;
  if (n->entry.type == EntryType::kDirectory) return InvalidArgument("--disk-path " + shown + ": is a directory");
  if (n->entry.type != EntryType::kFile) {
    return InvalidArgument("--disk-path " + shown + ": is a " + std::string(EntryTypeName(n->entry.type)) +
                           ", not a regular file");
  }
  return n;
}

}  // namespace

Result<const Node*> LocateDisk(const MergedTree& tree, std::string_view disk_path) {
  if (!disk_path.empty()) return LocateExplicit(tree, disk_path);

  const Status none = NotFound("image has no disk: no regular file under /disk (use --disk-path)");
  auto dir = tree.Resolve(kDiskDir);
  if (!dir.ok() || (*dir)->entry.type != EntryType::kDirectory) return none;

  std::vector<std::string> names;
  std::vector<const Node*> disks;
  for (const Node* child : tree.Children((*dir)->entry.path)) {
    const Node* file = nullptr;
    if (child->entry.type == EntryType::kFile) {
      file = child;
    } else if (child->entry.type == EntryType::kSymlink) {
      auto target = tree.Resolve(child->entry.path);
      if (target.ok() && (*target)->entry.type == EntryType::kFile) file = *target;
    }
    if (!file) continue;
    auto same_data = [file](const Node* d) {
      return d->layer == file->layer && d->entry.data_offset == file->entry.data_offset;
    };
    if (std::find_if(disks.begin(), disks.end(), same_data) != disks.end()) continue;
    disks.push_back(file);
    names.push_back(std::string(kDiskDir) + "/" + std::string(BaseName(child->entry.path)));
  }
  if (disks.empty()) return none;
  if (disks.size() > 1) {
    std::string list;
    for (size_t i = 0; i < names.size() && i < kMaxNamesInMessage; ++i) list += (i ? ", " : "") + names[i];
    if (names.size() > kMaxNamesInMessage) list += ", ...";
    return InvalidArgument("image has " + std::to_string(disks.size()) + " files under /disk (" + list +
                           "): pick one with --disk-path");
  }
  return disks.front();
}

}  // namespace ocifs
