#include "image/tar_entry.h"

namespace ocifs {

std::string_view EntryTypeName(EntryType type) {
  switch (type) {
    case EntryType::kFile: return "file";
    case EntryType::kDirectory: return "directory";
    case EntryType::kSymlink: return "symlink";
    case EntryType::kHardlink: return "hardlink";
    case EntryType::kCharDevice: return "character device";
    case EntryType::kBlockDevice: return "block device";
    case EntryType::kFifo: return "fifo";
  }
  return "unknown";
}

uint64_t TarEntry::StoredSize() const {
  if (!sparse) return size;
  uint64_t total = 0;
  for (const SparseRun& run : sparse_map) total += run.length;
  return total;
}

std::string NormalizePath(std::string_view raw) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= raw.size()) {
    size_t slash = raw.find('/', pos);
    if (slash == std::string_view::npos) slash = raw.size();
    std::string_view part = raw.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();  // ".." at the top stays at the top
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (std::string_view part : parts) {
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view DirName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

}  // namespace ocifs
