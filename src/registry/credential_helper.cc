#include "registry/credential_helper.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/unique_fd.h"

extern char** environ;

namespace ocifs {
namespace {

constexpr size_t kMaxAnswerBytes = 64 << 10;

bool IsHelperName(std::string_view name) {
  if (name.empty() || name.size() > 100) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Frees posix_spawn_file_actions_t on scope exit.
struct FileActions {
  posix_spawn_file_actions_t actions;
  FileActions() { posix_spawn_file_actions_init(&actions); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
};

struct HelperRun {
  int status = 0;
  bool timed_out = false;
  std::string out;  // holds the secret: never log it
};

// Starts `program get`, writes `input` to its stdin, reads its stdout
// (bounded) until EOF or `timeout`; kills it on timeout; always reaps it.
Result<HelperRun> Run(const std::string& program, const std::string& input, std::chrono::milliseconds timeout) {
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  UniqueFd in_read(in_pipe[0]), in_write(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  FileActions fa;
  posix_spawn_file_actions_adddup2(&fa.actions, in_read.get(), 0);
  posix_spawn_file_actions_adddup2(&fa.actions, out_write.get(), 1);
  posix_spawn_file_actions_addopen(&fa.actions, 2, "/dev/null", O_WRONLY, 0);
  std::string arg0 = program, arg1 = "get";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, program.c_str(), &fa.actions, nullptr, argv, environ);
  if (rc == ENOENT) return NotFound("credential helper " + program + " is not on PATH");
  if (rc != 0) return ErrnoError("start credential helper " + program, rc);
  in_read.reset();
  out_write.reset();
  // The input is a host name: far below a pipe's buffer, so this never
  // blocks. A helper that exits without reading it must not SIGPIPE us.
  sigset_t pipe_signal, old_mask;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, &old_mask);
  if (::write(in_write.get(), input.data(), input.size()) < 0 && errno == EPIPE) {
    timespec now{0, 0};
    sigtimedwait(&pipe_signal, nullptr, &now);
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  in_write.reset();

  HelperRun run;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      run.timed_out = true;
      break;
    }
    pollfd p{out_read.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;  // timeout: the loop ends at the deadline
    ssize_t got = ::read(out_read.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    if (run.out.size() < kMaxAnswerBytes) run.out.append(buf, static_cast<size_t>(got));
  }
  if (run.timed_out) ::kill(pid, SIGKILL);
  while (::waitpid(pid, &run.status, 0) < 0 && errno == EINTR) {
  }
  return run;
}

}  // namespace

std::string CredentialHelperServerUrl(std::string_view registry) {
  if (registry == "docker.io" || registry == "index.docker.io" || registry == "registry-1.docker.io") {
    return "https://index.docker.io/v1/";
  }
  return std::string(registry);
}

Result<std::optional<Credentials>> RunCredentialHelper(std::string_view name, const std::string& server_url,
                                                       std::chrono::milliseconds timeout) {
  if (!IsHelperName(name)) {
    return InvalidArgument("credential helper name \"" + std::string(name.substr(0, 100)) +
                           "\" is not a plain name (letters, digits, '-', '_', '.')");
  }
  const std::string program = "docker-credential-" + std::string(name);
  const std::string what = "credential helper " + program + " for " + server_url;
  OCIFS_ASSIGN_OR_RETURN(HelperRun run, Run(program, server_url, timeout));
  if (run.timed_out) {
    return Unavailable(what + " did not answer in " + std::to_string(timeout.count() / 1000) + " s");
  }
  bool exited_ok = WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0;
  if (!exited_ok) {
    // The helpers print "credentials not found in native keychain" for an unknown server.
    if (run.out.find("credentials not found") != std::string::npos) {
      spdlog::debug("{}: no credentials", what);
      return std::optional<Credentials>();
    }
    return Unavailable(what + " failed (" +
                       (WIFEXITED(run.status) ? "exit status " + std::to_string(WEXITSTATUS(run.status))
                                              : std::string("killed by a signal")) +
                       ")");
  }
  nlohmann::json j = nlohmann::json::parse(run.out, nullptr, /*allow_exceptions=*/false);
  // Never quote the answer: it holds the secret.
  if (j.is_discarded() || !j.is_object() || !j.contains("Username") || !j["Username"].is_string() ||
      !j.contains("Secret") || !j["Secret"].is_string()) {
    return Unavailable(what + " printed something that is not {\"Username\": .., \"Secret\": ..}");
  }
  Credentials c{j["Username"].get<std::string>(), j["Secret"].get<std::string>()};
  if (c.username == "<token>") {
    return Unsupported(what + " gave an identity token, which oci-fs cannot use yet");
  }
  spdlog::debug("{}: got credentials", what);
  return std::optional<Credentials>(std::move(c));
}

}  // namespace ocifs
