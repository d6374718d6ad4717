// CredentialProviders: the kubelet's image credential provider plugins
// (credentialprovider.kubelet.k8s.io/v1), run for the CSI plugin's volumes.
//
// For an image "host[:port]/repository" each provider whose matchImages
// matches (in the config's order) is asked: its executable BIN_DIR/NAME runs
// with the config's args and env (added to the plugin's own environment),
// gets {"apiVersion": .., "kind": "CredentialProviderRequest", "image": ..}
// on stdin and prints a CredentialProviderResponse on stdout:
// {"apiVersion", "kind": "CredentialProviderResponse", "cacheKeyType":
// "Image"|"Registry"|"Global", "cacheDuration": "1h" (optional),
// "auth": {"PATTERN": {"username", "password"}}}. The entries whose PATTERN
// matches the image (ImageMatches) are the credentials; of several, the
// kubelet's order (patterns sorted in reverse) picks the first, and an
// earlier provider wins over a later one.
//
// The answer is cached per provider under the key its cacheKeyType names
// (the image, its registry host[:port], or one global entry) for its
// cacheDuration (else the provider's defaultCacheDuration; 0 = not cached).
// A provider that fails, prints something else, or does not answer within
// the timeout (it is then killed) is an error naming the provider and the
// image, never its output on stdout (it holds the secret); the last line of
// its stderr is quoted (at most 200 characters).
//
// Thread safety: safe for concurrent use; plugin runs are serialized. Holds
// secrets: never logs them.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ocifs/status.h"
#include "registry/auth_config.h"
#include "registry/credential_provider_config.h"

namespace ocifs {

// One run of a provider plugin; `out` holds the secret.
struct PluginRun {
  int exit_code = -1;  // -1: killed by a signal
  bool timed_out = false;
  std::string out;  // stdout, at most 1 MiB
  std::string err;  // stderr, at most 64 KiB
};

struct PluginInvocation {
  std::string program;                 // absolute path
  std::vector<std::string> args;       // after the program name
  std::vector<std::pair<std::string, std::string>> env;  // added to ours
  std::string input;                   // the request, on stdin
  std::chrono::milliseconds timeout{0};
};

// Runs a plugin: posix_spawn, stdin from `input`, stdout and stderr
// captured (bounded), SIGKILL at the timeout, always reaped. kNotFound when
// the program does not exist, kPermissionDenied when it is not executable.
[[nodiscard]] Result<PluginRun> RunPlugin(const PluginInvocation& invocation);

// The credentials a provider gave for an image.
struct ProvidedCredentials {
  Credentials creds;
  std::string provider;  // its name
  // When the provider's cached answer runs out (now, for cacheDuration 0):
  // ask again after it to follow credentials that rotate.
  std::chrono::steady_clock::time_point expires;
};

class CredentialProviders {
 public:
  using Clock = std::chrono::steady_clock;
  using Runner = std::function<Result<PluginRun>(const PluginInvocation&)>;

  // `runner` runs a plugin (RunPlugin unless a test gives another).
  CredentialProviders(CredentialProviderConfig config, std::string bin_dir,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30), Runner runner = RunPlugin);
  CredentialProviders(const CredentialProviders&) = delete;
  CredentialProviders& operator=(const CredentialProviders&) = delete;

  // Loads the config file; every provider's executable must exist in
  // `bin_dir` (as the kubelet checks at start). Errors name the file or the
  // missing executable.
  [[nodiscard]] static Result<std::unique_ptr<CredentialProviders>> Load(const std::string& config_path,
                                                                         const std::string& bin_dir);

  // The credentials for `image` ("host[:port]/repository", no tag or
  // digest); nullopt when no provider matches it or none gave an entry
  // matching it. Errors: a matching provider that failed (kUnavailable), or
  // answered with another apiVersion/kind or a bad cacheKeyType (kInvalidArgument).
  [[nodiscard]] Result<std::optional<ProvidedCredentials>> Lookup(const std::string& image,
                                                                  Clock::time_point now = Clock::now());

  // How many times a plugin ran (for tests).
  size_t runs() const;

 private:
  struct Entry {
    std::map<std::string, Credentials> auth;  // response pattern -> credentials
    Clock::time_point expires;
  };
  Result<Entry> Ask(const CredentialProviderSpec& spec, const std::string& image, Clock::time_point now);

  const CredentialProviderConfig config_;
  const std::string bin_dir_;
  const std::chrono::milliseconds timeout_;
  const Runner runner_;
  std::mutex run_mu_;  // serializes plugin runs; before mu_
  mutable std::mutex mu_;
  // provider name -> cache key ("image:..", "registry:..", "global") -> answer; guarded by mu_
  std::map<std::string, std::map<std::string, Entry>> cache_;
  size_t runs_ = 0;  // guarded by mu_
};

// A docker config JSON ({"auths": {REGISTRY: {"auth": base64(user:pass)}}})
// holding `creds` for `registry`: what a volume's auth file holds.
std::string DockerConfigFor(const std::string& registry, const Credentials& creds);

}  // namespace ocifs
