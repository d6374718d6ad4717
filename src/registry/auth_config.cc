#include "registry/auth_config.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "registry/base64.h"
#include "registry/credential_helper.h"

namespace ocifs {
namespace {

constexpr size_t kMaxAuthFileBytes = 4 << 20;

// "https://host/v1/" -> "host"; "host/repo" stays.
std::string NormalizeKey(std::string_view key) {
  if (key.starts_with("https://")) {
    key.remove_prefix(8);
  } else if (key.starts_with("http://")) {
    key.remove_prefix(7);
  } else {
    return std::string(key);
  }
  // A URL key names a whole registry, as docker writes it.
  size_t slash = key.find('/');
  return std::string(key.substr(0, slash));
}

std::vector<std::string> HostAliases(std::string_view registry) {
  if (registry == "docker.io") return {"docker.io", "index.docker.io", "registry-1.docker.io"};
  return {std::string(registry)};
}

// The credential helper an auth file names for `registry`: its "credHelpers"
// entry, else its "credsStore"; "" for none.
Result<std::string> HelperFor(const nlohmann::json& j, const std::string& path, std::string_view registry) {
  if (auto helpers = j.find("credHelpers"); helpers != j.end()) {
    if (!helpers->is_object()) return Corrupt("authfile " + path + ": \"credHelpers\" is not an object");
    for (const auto& host : HostAliases(registry)) {
      for (const auto& [key, name] : helpers->items()) {
        if (NormalizeKey(key) != host) continue;
        if (!name.is_string()) return Corrupt("authfile " + path + ": credHelpers \"" + key + "\" is not a string");
        return name.get<std::string>();
      }
    }
  }
  if (auto store = j.find("credsStore"); store != j.end()) {
    if (!store->is_string()) return Corrupt("authfile " + path + ": \"credsStore\" is not a string");
    return store->get<std::string>();
  }
  return std::string();
}

}  // namespace

Result<Credentials> ParseCredsFlag(std::string_view creds) {
  size_t colon = creds.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgument("--creds must be USER:PASS");
  }
  return Credentials{std::string(creds.substr(0, colon)), std::string(creds.substr(colon + 1))};
}

std::vector<std::string> DefaultAuthFiles() {
  std::vector<std::string> files;
  if (const char* f = std::getenv("REGISTRY_AUTH_FILE"); f && *f) files.emplace_back(f);
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) {
    files.push_back(std::string(x) + "/containers/auth.json");
  }
  if (const char* h = std::getenv("HOME"); h && *h) files.push_back(std::string(h) + "/.docker/config.json");
  return files;
}

Result<std::optional<Credentials>> LookupAuthFile(const std::string& path, std::string_view registry,
                                                  std::string_view repository) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError("open authfile " + path, errno);
  std::string text(kMaxAuthFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxAuthFileBytes) return Corrupt("authfile " + path + " is larger than 4 MiB");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  // Never quote the parser's message: it shows the text around the error.
  if (j.is_discarded() || !j.is_object()) return Corrupt("authfile " + path + " is not a JSON object");
  OCIFS_ASSIGN_OR_RETURN(std::string helper, HelperFor(j, path, registry));
  if (!helper.empty()) {
    auto found = RunCredentialHelper(helper, CredentialHelperServerUrl(registry));
    if (!found.ok() && found.status().code() != Code::kNotFound) return found.status();
    if (!found.ok()) spdlog::warn("authfile {}: {}; reading its \"auths\"", path, found.status().message());
    if (found.ok() && *found) return found;  // else: the "auths" entries, as docker does
  }
  auto auths = j.find("auths");
  if (auths == j.end()) return std::optional<Credentials>();
  if (!auths->is_object()) return Corrupt("authfile " + path + ": \"auths\" is not an object");

  std::vector<std::string> candidates;  // longest first
  for (const auto& host : HostAliases(registry)) {
    std::string full = host + "/" + std::string(repository);
    while (true) {
      candidates.push_back(full);
      size_t slash = full.rfind('/');
      if (slash == std::string::npos) break;
      full.resize(slash);
    }
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& want : candidates) {
    for (const auto& [key, entry] : auths->items()) {
      if (NormalizeKey(key) != want) continue;
      if (!entry.is_object()) return Corrupt("authfile " + path + ": entry \"" + key + "\" is not an object");
      std::string user, pass;
      auto auth = entry.find("auth");
      if (auth != entry.end() && auth->is_string() && !auth->get<std::string>().empty()) {
        auto decoded = Base64Decode(auth->get<std::string>());
        if (!decoded) return Corrupt("authfile " + path + ": entry \"" + key + "\": \"auth\" is not base64");
        size_t colon = decoded->find(':');
        if (colon == std::string::npos) {
          return Corrupt("authfile " + path + ": entry \"" + key + "\": \"auth\" is not user:password");
        }
        user = decoded->substr(0, colon);
        pass = decoded->substr(colon + 1);
      } else if (entry.contains("username") && entry["username"].is_string() && entry.contains("password") &&
                 entry["password"].is_string()) {
        user = entry["username"].get<std::string>();
        pass = entry["password"].get<std::string>();
      } else {
        continue;  // e.g. an identitytoken-only entry: not supported, try shorter keys
      }
      spdlog::debug("registry {}: using credentials of \"{}\" from {}", registry, key, path);
      return std::optional<Credentials>(Credentials{std::move(user), std::move(pass)});
    }
  }
  return std::optional<Credentials>();
}

Result<std::optional<Credentials>> FindCredentials(const RegistryOptions& options, std::string_view registry,
                                                   std::string_view repository) {
  if (options.creds) {
    OCIFS_ASSIGN_OR_RETURN(Credentials c, ParseCredsFlag(*options.creds));
    return std::optional<Credentials>(std::move(c));
  }
  if (!options.authfile.empty()) return LookupAuthFile(options.authfile, registry, repository);
  for (const auto& file : DefaultAuthFiles()) {
    struct stat st;
    if (::stat(file.c_str(), &st) != 0) continue;
    OCIFS_ASSIGN_OR_RETURN(auto found, LookupAuthFile(file, registry, repository));
    if (found) return found;
  }
  return std::optional<Credentials>();
}

}  // namespace ocifs
