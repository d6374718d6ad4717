#include "registry/credential_provider.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "registry/base64.h"
#include "registry/piped_command.h"

namespace ocifs {
namespace {

constexpr size_t kMaxOut = 1 << 20;
constexpr size_t kMaxErr = 64 << 10;

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
  PipedCommand cmd;
  cmd.program = inv.program;
  cmd.args = inv.args;
  cmd.env = inv.env;
  cmd.input = inv.input;
  cmd.timeout = inv.timeout;
  cmd.max_out = kMaxOut;
  cmd.max_err = kMaxErr;
  cmd.what = "credential provider " + inv.program;
  OCIFS_ASSIGN_OR_RETURN(PipedResult piped, RunPiped(cmd));
  PluginRun run;
  run.exit_code = piped.exit_code;
  run.timed_out = piped.timed_out;
  run.out = std::move(piped.out);
  run.err = std::move(piped.err);
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
