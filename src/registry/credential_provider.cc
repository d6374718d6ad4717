#include "registry/credential_provider.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "registry/base64.h"

extern char** environ;

namespace ocifs {
namespace {

constexpr size_t kMaxOut = 1 << 20;
constexpr size_t kMaxErr = 64 << 10;

// Frees posix_spawn_file_actions_t on scope exit.
struct FileActions {
  posix_spawn_file_actions_t actions;
  FileActions() { posix_spawn_file_actions_init(&actions); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
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

std::string LastLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  size_t nl = text.rfind('\n');
  if (nl != std::string::npos) text = text.substr(nl + 1);
  if (text.size() > 200) text = text.substr(0, 200) + "...";
  return text;
}

std::string DurationText(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s" : std::to_string(d.count()) + " ms";
}

std::string ImageHost(const std::string& image) { return image.substr(0, image.find('/')); }

}  // namespace

Result<PluginRun> RunPlugin(const PluginInvocation& inv) {
  struct stat st;
  if (::stat(inv.program.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("credential provider " + inv.program + " does not exist");
    return ErrnoError("credential provider " + inv.program, errno);
  }
  if (!S_ISREG(st.st_mode) || ::access(inv.program.c_str(), X_OK) != 0) {
    return PermissionDenied("credential provider " + inv.program + " is not an executable file");
  }
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  UniqueFd in_read(in_pipe[0]), in_write(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  FileActions fa;
  posix_spawn_file_actions_adddup2(&fa.actions, in_read.get(), 0);
  posix_spawn_file_actions_adddup2(&fa.actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&fa.actions, err_write.get(), 2);
  std::vector<std::string> args{inv.program};
  args.insert(args.end(), inv.args.begin(), inv.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = MergedEnv(inv.env);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, inv.program.c_str(), &fa.actions, nullptr, argv.data(), envp.data());
  if (rc != 0) return ErrnoError("start credential provider " + inv.program, rc);
  in_read.reset();
  out_write.reset();
  err_write.reset();
  // The request is a few hundred bytes: it fits a pipe's buffer, so this
  // never blocks. A plugin that exits without reading it must not SIGPIPE us.
  sigset_t pipe_signal, old_mask;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, &old_mask);
  if (::write(in_write.get(), inv.input.data(), inv.input.size()) < 0 && errno == EPIPE) {
    timespec zero{0, 0};
    sigtimedwait(&pipe_signal, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  in_write.reset();

  PluginRun run;
  const auto deadline = std::chrono::steady_clock::now() + inv.timeout;
  bool out_open = true, err_open = true;
  char buf[4096];
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      run.timed_out = true;
      break;
    }
    pollfd p[2] = {{out_open ? out_read.get() : -1, POLLIN, 0}, {err_open ? err_read.get() : -1, POLLIN, 0}};
    int n = ::poll(p, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;  // the loop ends at the deadline
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      ssize_t got = ::read(p[i].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        (i == 0 ? out_open : err_open) = false;
        continue;
      }
      std::string& sink = i == 0 ? run.out : run.err;
      if (sink.size() < (i == 0 ? kMaxOut : kMaxErr)) sink.append(buf, static_cast<size_t>(got));
    }
  }
  if (run.timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

std::string DockerConfigFor(const std::string& registry, const Credentials& creds) {
  nlohmann::json j;
  j["auths"][registry]["auth"] = Base64Encode(creds.username + ":" + creds.password);
  return j.dump();
}

CredentialProviders::CredentialProviders(CredentialProviderConfig config, std::string bin_dir,
                                         std::chrono::milliseconds timeout, Runner runner)
    : config_(std::move(config)), bin_dir_(std::move(bin_dir)), timeout_(timeout), runner_(std::move(runner)) {}

Result<std::unique_ptr<CredentialProviders>> CredentialProviders::Load(const std::string& config_path,
                                                                       const std::string& bin_dir) {
  if (bin_dir.empty()) {
    return InvalidArgument("--image-credential-provider-config needs --image-credential-provider-bin-dir");
  }
  OCIFS_ASSIGN_OR_RETURN(CredentialProviderConfig config, LoadCredentialProviderConfig(config_path));
  for (const auto& p : config.providers) {
    std::string program = bin_dir + "/" + p.name;
    if (::access(program.c_str(), X_OK) != 0) {
      return NotFound("credential provider config " + config_path + ": provider \"" + p.name + "\": " + program +
                      " is not an executable file (" + std::strerror(errno) + ")");
    }
  }
  return std::make_unique<CredentialProviders>(std::move(config), bin_dir);
}

size_t CredentialProviders::runs() const {
  std::lock_guard lock(mu_);
  return runs_;
}

Result<CredentialProviders::Entry> CredentialProviders::Ask(const CredentialProviderSpec& spec,
                                                            const std::string& image, Clock::time_point now) {
  const std::string what = "credential provider \"" + spec.name + "\" for " + image;
  nlohmann::json request = {{"apiVersion", spec.api_version}, {"kind", "CredentialProviderRequest"},
                            {"image", image}};
  PluginInvocation inv{bin_dir_ + "/" + spec.name, spec.args, spec.env, request.dump(), timeout_};
  {
    std::lock_guard lock(mu_);
    ++runs_;
  }
  OCIFS_ASSIGN_OR_RETURN(PluginRun run, runner_(inv));
  if (run.timed_out) {
    return Unavailable(what + " did not answer in " + DurationText(timeout_) + " (killed)");
  }
  if (run.exit_code != 0) {
    std::string err = LastLine(run.err);
    return Unavailable(what + " failed (" +
                       (run.exit_code < 0 ? std::string("killed by a signal")
                                          : "exit status " + std::to_string(run.exit_code)) +
                       ")" + (err.empty() ? "" : ": " + err));
  }
  // Never quote stdout: it holds the secret.
  nlohmann::json j = nlohmann::json::parse(run.out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Unavailable(what + " printed something that is not a JSON object");
  auto text = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (text("kind") != "CredentialProviderResponse") {
    return InvalidArgument(what + " answered with kind \"" + text("kind").substr(0, 80) +
                           "\", not CredentialProviderResponse");
  }
  if (text("apiVersion") != spec.api_version) {
    return InvalidArgument(what + " answered with apiVersion \"" + text("apiVersion").substr(0, 80) +
                           "\", not the configured " + spec.api_version);
  }
  const std::string key_type = text("cacheKeyType");
  if (key_type != "Image" && key_type != "Registry" && key_type != "Global") {
    return InvalidArgument(what + " answered with cacheKeyType \"" + key_type.substr(0, 80) +
                           "\", not Image, Registry or Global");
  }
  std::chrono::milliseconds duration = spec.default_cache_duration;
  if (auto d = j.find("cacheDuration"); d != j.end() && !d->is_null()) {
    if (!d->is_string()) return InvalidArgument(what + ": cacheDuration is not a duration string");
    auto parsed = ParseGoDuration(d->get<std::string>());
    if (!parsed.ok()) return InvalidArgument(what + ": cacheDuration " + parsed.status().message());
    duration = *parsed;
  }
  Entry entry;
  entry.expires = now + duration;
  if (auto auth = j.find("auth"); auth != j.end() && !auth->is_null()) {
    if (!auth->is_object()) return Unavailable(what + ": \"auth\" is not an object");
    for (const auto& [pattern, value] : auth->items()) {
      if (!value.is_object() || !value.contains("username") || !value["username"].is_string() ||
          !value.contains("password") || !value["password"].is_string()) {
        return Unavailable(what + ": auth entry \"" + pattern.substr(0, 200) +
                           "\" has no string username and password");
      }
      entry.auth[pattern] = Credentials{value["username"].get<std::string>(), value["password"].get<std::string>()};
    }
  }
  if (duration.count() > 0) {
    std::string key = key_type == "Image" ? "image:" + image
                      : key_type == "Registry" ? "registry:" + ImageHost(image)
                                               : std::string("global");
    std::lock_guard lock(mu_);
    cache_[spec.name][key] = entry;
  }
  spdlog::debug("{}: {} auth entries, cached {} ms by {}", what, entry.auth.size(), duration.count(), key_type);
  return entry;
}

Result<std::optional<ProvidedCredentials>> CredentialProviders::Lookup(const std::string& image,
                                                                       Clock::time_point now) {
  for (const auto& spec : config_.providers) {
    bool matches = std::any_of(spec.match_images.begin(), spec.match_images.end(),
                               [&](const std::string& p) { return ImageMatches(p, image); });
    if (!matches) continue;
    std::optional<Entry> entry;
    {
      std::lock_guard lock(mu_);
      auto& cached = cache_[spec.name];
      for (const std::string& key : {"image:" + image, "registry:" + ImageHost(image), std::string("global")}) {
        auto it = cached.find(key);
        if (it == cached.end()) continue;
        if (now >= it->second.expires) {
          cached.erase(it);
          continue;
        }
        entry = it->second;
        break;
      }
    }
    if (!entry) {
      std::lock_guard run_lock(run_mu_);
      OCIFS_ASSIGN_OR_RETURN(Entry asked, Ask(spec, image, now));
      entry = std::move(asked);
    }
    // The kubelet's keyring order: patterns sorted in reverse, first match.
    for (auto it = entry->auth.rbegin(); it != entry->auth.rend(); ++it) {
      if (!ImageMatches(it->first, image)) continue;
      return std::optional<ProvidedCredentials>(ProvidedCredentials{it->second, spec.name, entry->expires});
    }
  }
  return std::optional<ProvidedCredentials>();
}

}  // namespace ocifs
