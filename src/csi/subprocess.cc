#include "csi/subprocess.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "base/unique_fd.h"

namespace ocifs {
namespace {

constexpr size_t kMaxCapture = 1 << 20;

// Owns a started child: kills and reaps it unless it was waited for.
class ChildProcess {
 public:
  ChildProcess(pid_t pid, bool own_group) : pid_(pid), own_group_(own_group) {}
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0) {
      Kill();
      int st = 0;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
  }

  // Polls for exit until `deadline`; returns false on timeout.
  bool WaitUntil(std::chrono::steady_clock::time_point deadline, int* status) {
    auto delay = std::chrono::milliseconds(2);
    while (true) {
      pid_t r = ::waitpid(pid_, status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) {
        pid_ = -1;
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(delay);
      delay = std::min(delay * 2, std::chrono::milliseconds(50));
    }
  }

  void Kill() {
    if (pid_ <= 0) return;
    if (own_group_) ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
  }

 private:
  pid_t pid_;
  bool own_group_;
};

std::string ReadAll(int fd) {
  std::string s;
  if (::lseek(fd, 0, SEEK_SET) < 0) return s;
  char buf[8192];
  while (s.size() < kMaxCapture) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    s.append(buf, static_cast<size_t>(n));
  }
  if (s.size() > kMaxCapture) s.resize(kMaxCapture);
  return s;
}

// In the forked child (async-signal-safe calls only): joins `ns_fd`'s cgroup
// namespace if >= 0, then writes "0" (itself) to `procs`; exits 126 on failure.
void MoveSelfToCgroup(const char* procs, int ns_fd) {
  const char* failed = nullptr;
  if (ns_fd >= 0 && ::setns(ns_fd, CLONE_NEWCGROUP) != 0) failed = "join PID 1's cgroup namespace";
  if (!failed) {
    int fd = ::open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "0", 1) != 1) failed = "move into its cgroup";
    if (fd >= 0) ::close(fd);
  }
  if (!failed) return;
  const int saved = errno;
  static const char kPrefix[] = "oci-fs csi: cannot ";
  [[maybe_unused]] ssize_t w = ::write(2, kPrefix, sizeof kPrefix - 1);
  w = ::write(2, failed, ::strlen(failed));
  w = ::write(2, " ", 1);
  w = ::write(2, procs, ::strlen(procs));
  w = ::write(2, ": ", 2);
  const char* reason = ::strerrordesc_np(saved);
  if (reason) w = ::write(2, reason, ::strlen(reason));
  w = ::write(2, "\n", 1);
  ::_exit(126);
}

}  // namespace

Result<ProcessResult> RunProcess(const ProcessSpec& spec) {
  if (spec.argv.empty()) return InvalidArgument("RunProcess: empty argv");
  UniqueFd out(::memfd_create("ocifs-out", MFD_CLOEXEC));
  UniqueFd err(::memfd_create("ocifs-err", MFD_CLOEXEC));
  UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!out.valid() || !err.valid() || !null.valid()) return ErrnoError("memfd_create", errno);

  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork " + spec.argv[0], errno);
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    if (spec.new_session) ::setsid();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(null.get(), 0);
    ::dup2(out.get(), 1);
    ::dup2(err.get(), 2);
    if (!spec.cgroup_procs.empty()) MoveSelfToCgroup(spec.cgroup_procs.c_str(), spec.cgroup_ns_fd);
    ::execvp(argv[0], argv.data());
    static const char kMsg[] = "oci-fs csi: exec failed\n";
    [[maybe_unused]] ssize_t w = ::write(2, kMsg, sizeof kMsg - 1);
    ::_exit(127);
  }

  ChildProcess child(pid, spec.new_session);
  ProcessResult result;
  int status = 0;
  if (!child.WaitUntil(std::chrono::steady_clock::now() + spec.timeout, &status)) {
    result.timed_out = true;
    // ~ChildProcess kills and reaps.
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  if (result.timed_out) {
    child.Kill();
  }
  result.out = ReadAll(out.get());
  result.err = ReadAll(err.get());
  return result;
}

}  // namespace ocifs
