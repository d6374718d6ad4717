#include "registry/piped_command.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <ctime>
#include <string_view>

#include "base/unique_fd.h"

extern char** environ;

namespace ocifs {
namespace {

// Frees posix_spawn_file_actions_t on scope exit.
struct FileActions {
  posix_spawn_file_actions_t actions;
  FileActions() { posix_spawn_file_actions_init(&actions); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
};

// Blocks SIGPIPE in the calling thread while alive; on exit, consumes a
// SIGPIPE our writes raised and restores the old mask.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_signal_);
    sigaddset(&pipe_signal_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal_, &old_mask_);
  }
  ~SigpipeBlock() {
    if (raised_) {
      timespec zero{0, 0};
      sigtimedwait(&pipe_signal_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;
  void raised() { raised_ = true; }

 private:
  sigset_t pipe_signal_, old_mask_;
  bool raised_ = false;
};

// Our environment with `extra` set over it.
std::vector<std::string> MergedEnv(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    bool replaced = std::any_of(extra.begin(), extra.end(), [&](const auto& kv) { return kv.first == name; });
    if (!replaced) env.emplace_back(entry);
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

Status MakePipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  return Status();
}

}  // namespace

Result<PipedResult> RunPiped(const PipedCommand& cmd) {
  UniqueFd in_read, in_write, out_read, out_write, err_read, err_write;
  OCIFS_RETURN_IF_ERROR(MakePipe(in_read, in_write));
  OCIFS_RETURN_IF_ERROR(MakePipe(out_read, out_write));
  if (cmd.capture_stderr) OCIFS_RETURN_IF_ERROR(MakePipe(err_read, err_write));
  FileActions fa;
  posix_spawn_file_actions_adddup2(&fa.actions, in_read.get(), 0);
  posix_spawn_file_actions_adddup2(&fa.actions, out_write.get(), 1);
  if (cmd.capture_stderr) {
    posix_spawn_file_actions_adddup2(&fa.actions, err_write.get(), 2);
  } else {
    posix_spawn_file_actions_addopen(&fa.actions, 2, "/dev/null", O_WRONLY, 0);
  }
  std::vector<std::string> args{cmd.program};
  args.insert(args.end(), cmd.args.begin(), cmd.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env;
  std::vector<char*> envp;
  if (!cmd.env.empty()) {
    env = MergedEnv(cmd.env);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  char** child_env = cmd.env.empty() ? environ : envp.data();
  pid_t pid = 0;
  int rc = cmd.search_path ? ::posix_spawnp(&pid, cmd.program.c_str(), &fa.actions, nullptr, argv.data(), child_env)
                           : ::posix_spawn(&pid, cmd.program.c_str(), &fa.actions, nullptr, argv.data(), child_env);
  if (rc == ENOENT && cmd.search_path) return NotFound(cmd.what + " is not on PATH");
  if (rc != 0) return ErrnoError("start " + cmd.what, rc);
  in_read.reset();
  out_write.reset();
  err_write.reset();
  if (cmd.input.empty()) in_write.reset();
  if (in_write.valid()) ::fcntl(in_write.get(), F_SETFL, ::fcntl(in_write.get(), F_GETFL) | O_NONBLOCK);

  SigpipeBlock sigpipe;
  PipedResult run;
  const auto deadline = std::chrono::steady_clock::now() + cmd.timeout;
  size_t written = 0;
  char buf[4096];
  while (out_read.valid() || err_read.valid() || in_write.valid()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      run.timed_out = true;
      break;
    }
    pollfd p[3] = {{out_read.valid() ? out_read.get() : -1, POLLIN, 0},
                   {err_read.valid() ? err_read.get() : -1, POLLIN, 0},
                   {in_write.valid() ? in_write.get() : -1, POLLOUT, 0}};
    int n = ::poll(p, 3, static_cast<int>(left.count()));
    if (n <= 0) continue;  // EINTR, or the timeout: the loop ends at the deadline
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      UniqueFd& fd = i == 0 ? out_read : err_read;
      ssize_t got = ::read(fd.get(), buf, sizeof buf);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        fd.reset();
        continue;
      }
      std::string& sink = i == 0 ? run.out : run.err;
      size_t limit = i == 0 ? cmd.max_out : cmd.max_err;
      if (sink.size() < limit) sink.append(buf, std::min(static_cast<size_t>(got), limit - sink.size()));
    }
    if (p[2].fd >= 0 && p[2].revents != 0) {
      ssize_t put = ::write(in_write.get(), cmd.input.data() + written, cmd.input.size() - written);
      if (put > 0) written += static_cast<size_t>(put);
      if (put < 0 && errno == EPIPE) sigpipe.raised();
      bool retry = put < 0 && (errno == EINTR || errno == EAGAIN);
      if (written == cmd.input.size() || (put < 0 && !retry)) in_write.reset();  // EOF, or the child closed stdin
    }
  }
  // Both outputs are at EOF (or the deadline passed): wait for the exit
  // until the deadline, then kill. Status 0 if waitpid fails (ECHILD).
  if (run.timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (true) {
    pid_t r = ::waitpid(pid, &status, run.timed_out ? 0 : WNOHANG);
    if (r < 0 && errno == EINTR) continue;
    if (r != 0) break;  // reaped, or an error
    if (std::chrono::steady_clock::now() >= deadline) {
      run.timed_out = true;
      ::kill(pid, SIGKILL);
      continue;
    }
    timespec pause{0, 5'000'000};  // the child closed its outputs: it exits soon
    ::nanosleep(&pause, nullptr);
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace ocifs
