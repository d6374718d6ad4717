#include "csi/mount_probe.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace ocifs {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') octal = false;
        v = v * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::string Normalize(const std::string& path) {
  std::string p = std::filesystem::path(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

std::string_view MountStateName(MountState state) {
  switch (state) {
    case MountState::kMissing: return "missing";
    case MountState::kNotMounted: return "not mounted";
    case MountState::kHealthy: return "mounted";
    case MountState::kDisconnected: return "disconnected";
  }
  return "unknown";
}

bool IsMountPoint(const std::string& path, std::string* fstype) {
  const std::string want = Normalize(path);
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  bool found = false;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint opts [optional...] - fstype source superopts
    std::istringstream ss(line);
    std::string id, parent, dev, root, mnt;
    ss >> id >> parent >> dev >> root >> mnt;
    if (Unescape(mnt) != want) continue;
    found = true;  // the last entry for a path is the visible one
    if (fstype) {
      std::string tok;
      while (ss >> tok && tok != "-") {
      }
      ss >> *fstype;
    }
  }
  return found;
}

MountState ProbeMount(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOTCONN || errno == ECONNABORTED) return MountState::kDisconnected;
    if (errno == ENOENT) {
      // A dead mount on a missing path cannot exist; a missing parent can.
      return MountState::kMissing;
    }
    return IsMountPoint(path) ? MountState::kDisconnected : MountState::kMissing;
  }
  if (!IsMountPoint(path)) return MountState::kNotMounted;
  // stat may be answered from cached attributes; statfs always reaches the
  // FUSE daemon, so a dead one shows here.
  struct statvfs vfs;
  if (::statvfs(path.c_str(), &vfs) != 0 && (errno == ENOTCONN || errno == ECONNABORTED)) {
    return MountState::kDisconnected;
  }
  return MountState::kHealthy;
}

std::optional<pid_t> FindMountProcess(const std::string& target) {
  const std::string want = Normalize(target);
  std::optional<pid_t> mount;  // an `oci-fs mount` process: a kept mount's server, or a --no-keeper daemon
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> args;
    size_t pos = 0;
    while (pos < cmdline.size()) {
      size_t end = cmdline.find('\0', pos);
      if (end == std::string::npos) end = cmdline.size();
      args.emplace_back(cmdline.substr(pos, end - pos));
      pos = end + 1;
    }
    if (args.size() < 3 || Normalize(args.back()) != want) continue;
    if (args[1] == "keeper") return static_cast<pid_t>(std::stol(name));  // a kept mount's daemon
    if (args[1] == "mount" && !mount) mount = static_cast<pid_t>(std::stol(name));
  }
  return mount;
}

}  // namespace ocifs
