#include "fuse/keeper.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "fuse/keeper_channel.h"
#include "fuse/mount_stats.h"

namespace ocifs {
namespace {

using Clock = std::chrono::steady_clock;

// Linux 6.9's notify code; absent from older <linux/fuse.h>.
constexpr int32_t kNotifyResend = 7;

std::string Describe(int wait_status) {
  if (WIFSIGNALED(wait_status)) return "was killed by signal " + std::to_string(WTERMSIG(wait_status));
  return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
}

// True once `pid` has exited (and is reaped), waiting at most `timeout`.
bool Reaped(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    pid_t r = ::waitpid(pid, nullptr, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Ends a serving process: it gets `grace` to end by itself (a connection
// that ended ends its loop; a second signal could land after it removed its
// handlers), then SIGTERM and 10 s, then SIGKILL.
void StopChild(pid_t pid, std::chrono::milliseconds grace) {
  if (Reaped(pid, grace)) return;
  ::kill(pid, SIGTERM);
  if (Reaped(pid, std::chrono::seconds(10))) return;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

}  // namespace

struct Keeper::Server {
  pid_t pid = 0;
  UniqueFd channel;       // the keeper's end; reset once the server closed its end
  bool restart = false;   // started by `oci-fs restart`
  bool serving = false;   // sent 'R'
  std::string error;      // what it reported with 'E'
  ~Server() {
    if (pid > 0) StopChild(pid, std::chrono::seconds(2));
  }
};

std::string PinnedReference(std::string_view reference, std::string_view digest) {
  if (digest.empty() || reference.find('@') != std::string_view::npos || reference.starts_with("oci:")) {
    return std::string(reference);
  }
  const size_t slash = reference.rfind('/');
  const size_t colon = reference.rfind(':');
  const bool tagged = colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash);
  return std::string(tagged ? reference.substr(0, colon) : reference) + "@" + std::string(digest);
}

Keeper::Keeper(KeeperOptions options) : options_(std::move(options)) {
  state_.mountpoint = options_.mountpoint;
  state_.reference = options_.reference;
  state_.binary = options_.binary;
  state_.keeper_pid = ::getpid();
  state_.started = static_cast<int64_t>(::time(nullptr));
  state_.socket = MountStatePath(options_.state_dir, options_.mountpoint, ".sock");
}

Keeper::~Keeper() {
  next_.reset();
  current_.reset();
  for (pid_t pid : retiring_) StopChild(pid, std::chrono::seconds(10));  // already told
}

Status Keeper::StartServer(bool takeover, const std::string& binary) {
  OCIFS_ASSIGN_OR_RETURN(auto pair, KeeperSocketPair());
  std::vector<std::string> args = {binary};
  args.insert(args.end(), options_.server_args.begin(), options_.server_args.end());
  if (takeover && !state_.digest.empty()) {
    // The kernel knows this image's sizes and bytes: a tag moved since must not change them.
    for (auto& a : args) {
      if (a == options_.reference) a = PinnedReference(a, state_.digest);
    }
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int child_end = pair.second.get();
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork", errno);
  if (pid == 0) {  // async-signal-safe calls only
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (child_end == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else if (::dup2(child_end, 3) < 0) {
      ::_exit(127);
    }
    ::execv(argv[0], argv.data());
    static const char kMsg[] = "oci-fs keeper: cannot exec the serving process\n";
    ssize_t ignored = ::write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
    (void)ignored;
    ::_exit(127);
  }
  auto server = std::make_unique<Server>();
  server->pid = pid;
  server->channel = std::move(pair.first);
  Status sent = takeover ? SendKeeperMessage(server->channel.get(), 'T', init_request_, fuse_fd_.get())
                         : SendKeeperMessage(server->channel.get(), 'M', "");
  if (!sent.ok()) spdlog::warn("keeper: {}", sent.ToString());  // its exit tells the rest
  spdlog::info("keeper: started serving process {} from {} ({})", pid, binary, takeover ? "takeover" : "first");
  if (takeover) {
    next_ = std::move(server);
  } else {
    current_ = std::move(server);
  }
  return Status::Ok();
}

void Keeper::OnServerMessage(Server* server) {
  auto m = ReceiveKeeperMessage(server->channel.get(), 0);
  if (!m.ok()) {
    server->channel.reset();  // closed: its exit is reaped through SIGCHLD
    return;
  }
  switch (m->tag) {
    case 'F':
      if (!fuse_fd_.valid() && m->fd.valid()) {
        fuse_fd_ = std::move(m->fd);
        init_request_ = m->payload;
      }
      break;
    case 'E':
      server->error = m->payload;
      break;
    case 'R': {
      server->serving = true;
      state_.digest = m->payload;
      state_.server_pid = server->pid;
      if (server == next_.get()) {
        std::unique_ptr<Server> old = std::move(current_);
        current_ = std::move(next_);
        ++state_.takeovers;
        failures_ = 0;
        serverless_since_.reset();
        if (old) {  // a restart: the old server stops now; what it read and did not answer is resent
          ::kill(old->pid, SIGTERM);
          retiring_.push_back(std::exchange(old->pid, 0));
        }
        if (restart_client_.valid()) {
          Status s = SendKeeperMessage(restart_client_.get(), 'O', std::to_string(current_->pid));
          (void)s;
          restart_client_.reset();
        }
        spdlog::warn("keeper: serving process {} took {} over (takeover {})", current_->pid,
                     options_.mountpoint, state_.takeovers);
        ReportReady(Status::Ok());  // a first server that died between 'F' and 'R'
      } else {
        ReportReady(Status::Ok());
      }
      Publish();
      break;
    }
    default:
      spdlog::warn("keeper: unknown message '{}' from process {}", m->tag, server->pid);
  }
}

void Keeper::OnServerExit(pid_t pid, int wait_status) {
  if (auto it = std::find(retiring_.begin(), retiring_.end(), pid); it != retiring_.end()) {
    retiring_.erase(it);
    SendResend();  // requests the old server had read and not answered go to the new one
    return;
  }
  if (current_ && pid == current_->pid) {
    current_->pid = 0;  // reaped
    bool was_serving = current_->serving;
    std::string error = current_->error;
    current_.reset();
    if (!was_serving && !fuse_fd_.valid()) {  // the first server did not mount
      ReportReady(Internal(error.empty() ? "the serving process " + Describe(wait_status) : error));
      EndMount(1);
      return;
    }
    if (!ConnectionAlive()) {
      spdlog::info("keeper: {} was unmounted", options_.mountpoint);
      EndMount(0);
      return;
    }
    if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0 && was_serving) {
      spdlog::info("keeper: the serving process {} stopped (SIGTERM?): ending the mount of {}", pid,
                   options_.mountpoint);
      Unmount();
      EndMount(0);
      return;
    }
    spdlog::error("keeper: the serving process {} of {} {}; a new one takes the connection over", pid,
                  options_.mountpoint, Describe(wait_status));
    SendResend();
    state_.server_pid = 0;
    Publish();
    serverless_since_ = Clock::now();
    if (!next_) retry_at_ = Clock::now();
    return;
  }
  if (next_ && pid == next_->pid) {
    next_->pid = 0;
    std::string why = next_->error.empty() ? "the new serving process " + Describe(wait_status) : next_->error;
    bool restart = next_->restart;
    next_.reset();
    ++failures_;
    if (restart && current_) {
      spdlog::error("keeper: restart of {} failed ({}); the old serving process {} keeps serving",
                    options_.mountpoint, why, current_->pid);
      if (restart_client_.valid()) {
        Status s = SendKeeperMessage(restart_client_.get(), 'E', why);
        (void)s;
        restart_client_.reset();
      }
      return;
    }
    if (!serverless_since_) serverless_since_ = Clock::now();
    auto delay = std::chrono::milliseconds(std::min(4000, 250 << std::min(failures_ - 1, 4)));
    spdlog::error("keeper: takeover of {} failed ({}); retrying in {} ms", options_.mountpoint, why, delay.count());
    retry_at_ = Clock::now() + delay;
  }
}

void Keeper::OnControlConnection() {
  UniqueFd client(::accept4(control_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!client.valid()) return;
  auto m = ReceiveKeeperMessage(client.get(), 2000);
  if (!m.ok() || m->tag != 'S') return;
  std::string refuse;
  if (next_ || restart_client_.valid()) refuse = "a takeover of " + options_.mountpoint + " is already under way";
  if (!current_ || !current_->serving) refuse = "no process serves " + options_.mountpoint + " right now";
  if (!refuse.empty()) {
    Status s = SendKeeperMessage(client.get(), 'E', refuse);
    (void)s;
    return;
  }
  std::string binary = m->payload.empty() ? state_.binary : m->payload;
  spdlog::warn("keeper: restart of {} from {}", options_.mountpoint, binary);
  Status started = StartServer(true, binary);
  if (!started.ok()) {
    Status s = SendKeeperMessage(client.get(), 'E', started.ToString());
    (void)s;
    return;
  }
  next_->restart = true;
  state_.binary = binary;  // later takeovers start from it too
  restart_client_ = std::move(client);
}

void Keeper::SendResend() {
  if (!fuse_fd_.valid()) return;
  // Tests stand for a kernel before 6.9 with this (tests/fuse/test_keeper.py).
  if (std::getenv("OCIFS_KEEPER_NO_RESEND") != nullptr) return;
  fuse_out_header h{};
  h.len = sizeof h;
  h.error = kNotifyResend;
  h.unique = 0;
  if (::write(fuse_fd_.get(), &h, sizeof h) == static_cast<ssize_t>(sizeof h)) return;
  int err = errno;
  if (resend_supported_) {
    spdlog::error("keeper: the kernel refused FUSE_NOTIFY_RESEND ({}): requests in flight at the crash stay "
                  "unanswered (Linux 6.9 or later resends them)", std::strerror(err));
  }
  resend_supported_ = false;
}

bool Keeper::ConnectionAlive() const {
  if (!fuse_fd_.valid()) return false;
  pollfd p{fuse_fd_.get(), 0, 0};
  return ::poll(&p, 1, 0) == 0 || !(p.revents & (POLLERR | POLLHUP));
}

void Keeper::Unmount() {
  if (::umount2(options_.mountpoint.c_str(), MNT_DETACH) == 0) return;
  int err = errno;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execlp("fusermount3", "fusermount3", "-u", "-z", options_.mountpoint.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  if (pid > 0) ::waitpid(pid, &status, 0);
  if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    spdlog::error("keeper: cannot unmount {}: {}", options_.mountpoint, std::strerror(err));
  }
}

void Keeper::EndMount(int exit_code) {
  done_ = true;
  exit_code_ = exit_code;
  fuse_fd_.reset();  // unmounted: the connection ends with its last holder
  next_.reset();
  current_.reset();
  ::unlink(MountStatePath(options_.state_dir, options_.mountpoint, ".json").c_str());
  ::unlink(state_.socket.c_str());
  RemoveMountStats(options_.state_dir, options_.mountpoint);  // every serving process has ended
}

void Keeper::Publish() {
  Status s = SaveMountState(options_.state_dir, state_);
  if (!s.ok()) spdlog::warn("keeper: {}", s.ToString());
}

void Keeper::ReportReady(const Status& status) {
  if (options_.ready_fd < 0) return;
  std::string msg = status.ok() ? std::string("R") : "E" + status.message();
  ssize_t ignored = ::write(options_.ready_fd, msg.data(), msg.size());
  (void)ignored;
  ::close(options_.ready_fd);
  options_.ready_fd = -1;
  // The caller may read our stderr to its end: it must not wait for the unmount.
  ::unsetenv("OCIFS_KEEPER_DETACH");
  if (int null = ::open("/dev/null", O_RDWR | O_CLOEXEC); null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    ::close(null);
  }
}

int Keeper::Run() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&mask, sig);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_.reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  ::setenv("OCIFS_KEEPER_FD", "3", 1);
  // Daemonized: the first server keeps the caller's stderr (its startup
  // warnings reach the user) until it serves, then lets it go, as this
  // process does once it reported ready.
  if (options_.ready_fd >= 0) ::setenv("OCIFS_KEEPER_DETACH", "1", 1);
  std::error_code ec;
  std::filesystem::create_directories(options_.state_dir, ec);
  auto control = ListenKeeper(state_.socket);
  if (!control.ok()) {
    ReportReady(control.status());
    return 1;
  }
  control_ = std::move(control).value();
  if (Status s = StartServer(false, state_.binary); !s.ok()) {
    ReportReady(s);
    return 1;
  }
  while (!done_) {
    std::vector<pollfd> fds = {{signal_fd_.get(), POLLIN, 0}, {control_.get(), POLLIN, 0},
                               {fuse_fd_.get(), 0, 0}};
    std::vector<Server*> watched;
    for (Server* s : {current_.get(), next_.get()}) {
      if (s != nullptr && s->channel.valid()) {
        fds.push_back({s->channel.get(), POLLIN, 0});
        watched.push_back(s);
      }
    }
    int timeout = retry_at_ || serverless_since_ ? 100 : -1;
    int n = ::poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) {
      spdlog::error("keeper: poll: {}", std::strerror(errno));
      break;
    }
    for (size_t i = 0; i < watched.size(); ++i) {
      if (fds[3 + i].revents != 0) OnServerMessage(watched[i]);
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(signal_fd_.get(), &info, sizeof info) == sizeof info) {
        int sig = static_cast<int>(info.ssi_signo);
        if (sig == SIGUSR1 && current_) ::kill(current_->pid, SIGUSR1);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
          spdlog::info("keeper: signal {}: unmounting {}", sig, options_.mountpoint);
          Unmount();
          EndMount(0);
        }
      }
      int status;
      for (pid_t pid; !done_ && (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) OnServerExit(pid, status);
    }
    if (done_) break;
    if (fds[2].revents & (POLLERR | POLLHUP)) {
      spdlog::info("keeper: the connection of {} ended (unmounted)", options_.mountpoint);
      EndMount(0);
      break;
    }
    if (fds[1].revents & POLLIN) OnControlConnection();
    auto now = Clock::now();
    if (retry_at_ && now >= *retry_at_ && !next_) {
      retry_at_.reset();
      // Every other attempt starts from the keeper's own image: a binary
      // removed or broken on disk does not leave the mount without a server.
      std::string binary = failures_ % 2 == 1 ? "/proc/self/exe" : state_.binary;
      if (Status s = StartServer(true, binary); !s.ok()) {
        ++failures_;
        retry_at_ = now + std::chrono::seconds(1);
      }
    }
    if (serverless_since_ && now - *serverless_since_ > options_.give_up_after) {
      spdlog::error("keeper: no serving process for {} s: ending the mount of {} (readers get ENOTCONN)",
                    options_.give_up_after.count(), options_.mountpoint);
      Unmount();
      EndMount(1);
    }
  }
  return exit_code_;
}

}  // namespace ocifs
