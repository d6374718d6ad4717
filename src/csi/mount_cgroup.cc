#include "csi/mount_cgroup.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "csi/volume_store.h"

namespace ocifs {
namespace {

namespace fs = std::filesystem;

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// "populated 1" in cgroup.events: a process runs in the cgroup or below.
bool Populated(const std::string& dir) {
  return ReadSmallFile(dir + "/cgroup.events").find("populated 1") != std::string::npos;
}

bool SameNamespace(const char* a, const char* b) {
  struct stat sa, sb;
  if (::stat(a, &sa) != 0 || ::stat(b, &sb) != 0) return true;  // cannot tell: stay
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// SIGKILL to every process of `dir`: cgroup.kill (Linux 5.14+), else one by one.
void KillAll(const std::string& dir) {
  {
    std::ofstream kill_file(dir + "/cgroup.kill");
    if (kill_file && (kill_file << "1").flush()) return;
  }
  std::istringstream pids(ReadSmallFile(dir + "/cgroup.procs"));
  for (pid_t pid; pids >> pid;) ::kill(pid, SIGKILL);
}

}  // namespace

Status MountCgroups::Init() {
  if (!enabled()) return Status::Ok();
  if (root_.front() != '/') return InvalidArgument("--mount-cgroup must be absolute: " + root_);
  if (::mkdir(root_.c_str(), 0755) != 0 && errno != EEXIST) {
    return InvalidArgument("--mount-cgroup " + root_ + ": cannot create it: " + std::strerror(errno));
  }
  struct statfs fs_info;
  if (::statfs(root_.c_str(), &fs_info) != 0) {
    return InvalidArgument("--mount-cgroup " + root_ + ": " + std::strerror(errno));
  }
  if (fs_info.f_type != CGROUP2_SUPER_MAGIC) {
    return InvalidArgument("--mount-cgroup " + root_ +
                           " is not in a cgroup v2 hierarchy (mount the host's cgroupfs, e.g. "
                           "/sys/fs/cgroup, and name a directory in it)");
  }
  if (::access((root_ + "/cgroup.procs").c_str(), W_OK) != 0) {
    return InvalidArgument("--mount-cgroup " + root_ + ": cgroup.procs is not writable: " +
                           std::strerror(errno));
  }
  if (!SameNamespace("/proc/self/ns/cgroup", "/proc/1/ns/cgroup")) {
    host_cgroup_ns_.reset(::open("/proc/1/ns/cgroup", O_RDONLY | O_CLOEXEC));
    if (!host_cgroup_ns_.valid()) {
      return InvalidArgument("--mount-cgroup: cannot open PID 1's cgroup namespace: " +
                             std::string(std::strerror(errno)) + " (the plugin needs hostPID)");
    }
  }
  return Status::Ok();
}

std::string MountCgroups::PathFor(const std::string& target) const {
  return root_ + "/" + TargetKey(target);
}

Status MountCgroups::Create(const std::string& target) const {
  if (!enabled()) return Status::Ok();
  const std::string dir = PathFor(target);
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoError("create mount cgroup " + dir, errno);
  }
  return Status::Ok();
}

MountCgroups::ChildMove MountCgroups::MoveFor(const std::string& target) const {
  if (!enabled()) return {};
  return {PathFor(target) + "/cgroup.procs", host_cgroup_ns_.get()};
}

Status MountCgroups::Remove(const std::string& target, std::chrono::milliseconds grace) const {
  if (!enabled()) return Status::Ok();
  const std::string dir = PathFor(target);
  if (::access(dir.c_str(), F_OK) != 0) return Status::Ok();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (Populated(dir) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (Populated(dir)) {
    spdlog::warn("csi: processes of {} still run in {} after its unmount; killing them", target, dir);
    KillAll(dir);
    for (int i = 0; i < 100 && Populated(dir); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError("remove mount cgroup " + dir, errno);
  }
  return Status::Ok();
}

int MountCgroups::RemoveOrphans(const std::vector<std::string>& targets) const {
  if (!enabled()) return 0;
  std::set<std::string> keep;
  for (const auto& t : targets) keep.insert(TargetKey(t));
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string name = entry.path().filename().string();
    // Only our own names: 16 hex digits (an operator's other cgroups stay).
    if (name.size() != 16 || name.find_first_not_of("0123456789abcdef") != std::string::npos) continue;
    if (keep.count(name) || !entry.is_directory(ec)) continue;
    const std::string dir = entry.path().string();
    if (!Populated(dir) && ::rmdir(dir.c_str()) == 0) ++removed;
  }
  return removed;
}

}  // namespace ocifs
