// Credentials for a registry: --creds, else an authfile (containers-auth.json
// or docker config.json), looked up as podman and skopeo do.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ocifs/status.h"
#include "registry/registry_options.h"

namespace ocifs {

// Holds a secret: never log or print it.
struct Credentials {
  std::string username, password;
};

// "USER:PASS" (the password may contain ':'); kInvalidArgument without a ':'.
Result<Credentials> ParseCredsFlag(std::string_view creds);

// The default authfiles in search order: $REGISTRY_AUTH_FILE,
// $XDG_RUNTIME_DIR/containers/auth.json, $HOME/.docker/config.json (unset
// variables skipped).
std::vector<std::string> DefaultAuthFiles();

// The entry of `path` for `registry`/`repository`: the "auths" keys are tried
// longest first (host/repo/path, host/repo, ..., host); keys written as URLs
// ("https://host/v1/") count as the host. docker.io also matches
// index.docker.io. A "credHelpers" entry for the registry, else a
// "credsStore", is asked first (`docker-credential-NAME get`,
// RunCredentialHelper); when it has nothing, "auths" is read. nullopt if
// nothing matches. kCorrupt for a
// malformed file (the message never quotes its contents); kIoError if unreadable.
Result<std::optional<Credentials>> LookupAuthFile(const std::string& path, std::string_view registry,
                                                  std::string_view repository);

// --creds, else the explicit authfile (which must exist), else the first
// default authfile with a matching entry; nullopt = anonymous.
Result<std::optional<Credentials>> FindCredentials(const RegistryOptions& options, std::string_view registry,
                                                   std::string_view repository);

}  // namespace ocifs
