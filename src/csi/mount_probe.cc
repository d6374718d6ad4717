#include "csi/mount_probe.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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
// `usage` (may be null) receives statvfs's answer when there is one.
int StatPath(const char* path, struct statvfs* usage) {
  struct stat st;
  if (::stat(path, &st) != 0) {
    if (errno == ENOTCONN || errno == ECONNABORTED) return kSawNotConnected;
    return errno == ENOENT ? kSawMissing : kSawOtherError;
  }
  // stat may be answered from cached attributes; statfs always reaches the
  // FUSE daemon, so a dead one shows here.
  struct statvfs vfs;
  if (::statvfs(path, &vfs) != 0) {
    if (errno == ENOTCONN || errno == ECONNABORTED) return kSawNotConnected;
    return kSawAnswer;
  }
  if (usage) *usage = vfs;
  return kSawAnswer;
}

// Children killed at their timeout that had not exited yet (blocked in a
// FUSE request a wedged daemon had already taken), with the path each
// probes: reaped by later probes, and while one lingers its path is stalled.
struct Unreaped {
  pid_t pid;
  std::string path;
};
std::mutex g_unreaped_mu;
std::vector<Unreaped> g_unreaped;  // guarded by g_unreaped_mu

// Reaps the leftovers that have exited; the paths of those still blocked.
std::vector<std::string> ReapLeftovers() {
  std::lock_guard<std::mutex> lock(g_unreaped_mu);
  std::erase_if(g_unreaped, [](const Unreaped& u) { return ::waitpid(u.pid, nullptr, WNOHANG) != 0; });
  std::vector<std::string> blocked;
  for (const Unreaped& u : g_unreaped) blocked.push_back(u.path);
  return blocked;
}

// One probing child: its pid (0 once reaped, -1 if none was started), what
// it saw, and whether it was killed at the deadline (then it saw no answer).
struct Child {
  pid_t pid = -1;
  std::optional<int> saw;
  bool killed = false;
};

// What one path's probe saw: the exit code of its child (nullopt: no answer
// within the deadline) and, when statvfs answered, its numbers.
struct Seen {
  std::optional<int> saw;
  std::optional<struct statvfs> usage;
};

// One statvfs slot per child, shared with it (MAP_SHARED|MAP_ANONYMOUS made
// before the fork): a child writes its slot and exits; the parent reads a
// slot only after reaping its child, so the slots need no lock.
class UsageSlots {
 public:
  explicit UsageSlots(size_t n) : bytes_(std::max<size_t>(n, 1) * sizeof(Slot)) {
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    slots_ = p == MAP_FAILED ? nullptr : static_cast<Slot*>(p);  // zeroed: no answer
  }
  ~UsageSlots() {
    if (slots_) ::munmap(slots_, bytes_);
  }
  UsageSlots(const UsageSlots&) = delete;
  UsageSlots& operator=(const UsageSlots&) = delete;

  // Where child i writes (null without a mapping: no usage is reported).
  struct statvfs* For(size_t i) { return slots_ ? &slots_[i].vfs : nullptr; }
  void MarkWritten(size_t i) {
    if (slots_) slots_[i].written = 1;
  }
  std::optional<struct statvfs> Read(size_t i) const {
    if (!slots_ || !slots_[i].written) return std::nullopt;
    return slots_[i].vfs;
  }

 private:
  struct Slot {
    struct statvfs vfs;
    int written;
  };
  size_t bytes_;
  Slot* slots_ = nullptr;
};

// Polls every child until each has exited or `deadline` passes.
void WaitChildren(std::vector<Child>& children, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    bool running = false;
    for (Child& c : children) {
      if (c.pid <= 0) continue;
      int status = 0;
      pid_t r = ::waitpid(c.pid, &status, WNOHANG);
      if (r == c.pid) {
        c.saw = WIFEXITED(status) ? WEXITSTATUS(status) : kSawOtherError;
        c.pid = 0;
      } else if (r < 0 && errno != EINTR) {  // not our child any more
        c.saw = kSawOtherError;
        c.pid = 0;
      } else {
        running = true;
      }
    }
    if (!running || std::chrono::steady_clock::now() >= deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// StatPath of every path, each in a child process started at once, so that
// daemons that never answer block the caller for one `timeout_ms` in all;
// nullopt for a path whose child did not finish within it, and, without a
// child, for a path where a child of an earlier probe is still blocked.
std::vector<Seen> StatPathsWithin(const std::vector<std::string>& paths, int timeout_ms) {
  const std::vector<std::string> blocked = ReapLeftovers();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::vector<Child> children(paths.size());
  UsageSlots usage(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    if (std::find(blocked.begin(), blocked.end(), paths[i]) != blocked.end()) continue;
    const char* p = paths[i].c_str();
    pid_t pid = ::fork();
    if (pid == 0) {
      struct statvfs* slot = usage.For(i);
      const int saw = StatPath(p, slot);
      if (slot && saw == kSawAnswer && slot->f_frsize + slot->f_bsize != 0) usage.MarkWritten(i);
      ::_exit(saw);
    }
    if (pid < 0) {
      children[i].saw = StatPath(p, nullptr);  // no child (out of processes): ask in this thread
    } else {
      children[i].pid = pid;
    }
  }
  WaitChildren(children, deadline);
  bool killed = false;
  for (Child& c : children) {
    if (c.pid <= 0) continue;
    ::kill(c.pid, SIGKILL);  // a request still queued is dropped; one the daemon took is not
    c.killed = killed = true;
  }
  if (killed) {
    WaitChildren(children, std::chrono::steady_clock::now() + std::chrono::milliseconds(kProbeReapMs));
    std::lock_guard<std::mutex> lock(g_unreaped_mu);
    for (size_t i = 0; i < paths.size(); ++i) {
      if (children[i].pid > 0) g_unreaped.push_back(Unreaped{children[i].pid, paths[i]});
    }
  }
  std::vector<Seen> out(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    const Child& c = children[i];
    if (c.killed) continue;
    out[i].saw = c.saw;
    if (c.pid == 0 && c.saw == kSawAnswer) out[i].usage = usage.Read(i);  // reaped: its slot is final
  }
  return out;
}

}  // namespace

std::string_view MountStateName(MountProbeState state) {
  switch (state) {
    case MountProbeState::kMissing: return "missing";
    case MountProbeState::kNotMounted: return "not mounted";
    case MountProbeState::kHealthy: return "mounted";
    case MountProbeState::kDisconnected: return "disconnected";
    case MountProbeState::kStalled: return "stalled";
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

namespace {

MountProbeState StateOf(const std::string& path, const std::optional<int>& saw) {
  if (!saw) return IsMountPoint(path) ? MountProbeState::kStalled : MountProbeState::kMissing;
  switch (*saw) {
    case kSawAnswer: return IsMountPoint(path) ? MountProbeState::kHealthy : MountProbeState::kNotMounted;
    case kSawNotConnected: return MountProbeState::kDisconnected;
    case kSawMissing: return MountProbeState::kMissing;  // a dead mount on a missing path cannot exist
    default: return IsMountPoint(path) ? MountProbeState::kDisconnected : MountProbeState::kMissing;
  }
}

}  // namespace

MountProbeState ProbeMount(const std::string& path, int timeout_ms) { return ProbeMounts({path}, timeout_ms)[0]; }

MountProbe ProbeMountWithUsage(const std::string& path, int timeout_ms) {
  const std::vector<Seen> seen = StatPathsWithin({path}, timeout_ms);
  MountProbe probe;
  probe.state = StateOf(path, seen[0].saw);
  if (probe.state == MountProbeState::kHealthy) probe.usage = seen[0].usage;
  return probe;
}

std::vector<MountProbeState> ProbeMounts(const std::vector<std::string>& paths, int timeout_ms) {
  const std::vector<Seen> seen = StatPathsWithin(paths, timeout_ms);
  std::vector<MountProbeState> out;
  out.reserve(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) out.push_back(StateOf(paths[i], seen[i].saw));
  return out;
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
