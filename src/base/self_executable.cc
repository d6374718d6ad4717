#include "base/self_executable.h"

#include <limits.h>
#include <unistd.h>

#include <filesystem>

namespace ocifs {

std::string SelfExecutable() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

std::string SiblingExecutable(const std::string& name) {
  const std::string self = SelfExecutable();
  if (self.empty()) return name;
  return (std::filesystem::path(self).parent_path() / name).string();
}

}  // namespace ocifs
