#include "csi/mount_probe.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
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

// What stat(2) and statfs(2) of a path saw, as the probing child's exit code.
enum Saw : int { kSawAnswer = 0, kSawMissing = 1, kSawNotConnected = 2, kSawOtherError = 3 };

// Only system calls: safe in a child forked from a threaded process.
int StatPath(const char* path) {
  struct stat st;
  if (::stat(path, &st) != 0) {
    if (errno == ENOTCONN || errno == ECONNABORTED) return kSawNotConnected;
    return errno == ENOENT ? kSawMissing : kSawOtherError;
  }
  // stat may be answered from cached attributes; statfs always reaches the
  // FUSE daemon, so a dead one shows here.
  struct statvfs vfs;
  if (::statvfs(path, &vfs) != 0 && (errno == ENOTCONN || errno == ECONNABORTED)) return kSawNotConnected;
  return kSawAnswer;
}

// Children killed at their timeout that had not exited yet (blocked in a
// FUSE request a wedged daemon had already taken): reaped by later probes.
std::mutex g_unreaped_mu;
std::vector<pid_t> g_unreaped;  // guarded by g_unreaped_mu

void ReapLeftovers() {
  std::lock_guard<std::mutex> lock(g_unreaped_mu);
  std::erase_if(g_unreaped, [](pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) != 0; });
}

// Waits for `pid` up to `ms`; its exit code, or nullopt if it is still running.
std::optional<int> WaitChild(pid_t pid, int ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : kSawOtherError;
    if (r < 0 && errno != EINTR) return kSawOtherError;  // not our child any more
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// StatPath in a child process, so that a daemon that never answers cannot
// block the caller; nullopt if the child did not finish within `timeout_ms`.
std::optional<int> StatPathWithin(const std::string& path, int timeout_ms) {
  ReapLeftovers();
  const char* p = path.c_str();
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(StatPath(p));
  if (pid < 0) return StatPath(p);  // no child (out of processes): ask in this thread
  if (auto saw = WaitChild(pid, timeout_ms)) return saw;
  ::kill(pid, SIGKILL);  // a request still queued is dropped; one the daemon took is not
  if (!WaitChild(pid, 1000)) {
    std::lock_guard<std::mutex> lock(g_unreaped_mu);
    g_unreaped.push_back(pid);
  }
  return std::nullopt;
}

}  // namespace

std::string_view MountStateName(MountState state) {
  switch (state) {
    case MountState::kMissing: return "missing";
    case MountState::kNotMounted: return "not mounted";
    case MountState::kHealthy: return "mounted";
    case MountState::kDisconnected: return "disconnected";
    case MountState::kStalled: return "stalled";
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

MountState ProbeMount(const std::string& path, int timeout_ms) {
  std::optional<int> saw = StatPathWithin(path, timeout_ms);
  if (!saw) return IsMountPoint(path) ? MountState::kStalled : MountState::kMissing;
  switch (*saw) {
    case kSawAnswer: return IsMountPoint(path) ? MountState::kHealthy : MountState::kNotMounted;
    case kSawNotConnected: return MountState::kDisconnected;
    case kSawMissing: return MountState::kMissing;  // a dead mount on a missing path cannot exist
    default: return IsMountPoint(path) ? MountState::kDisconnected : MountState::kMissing;
  }
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
