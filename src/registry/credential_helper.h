// CredentialHelper: docker's credential helper protocol
// (docker-credential-helpers): `docker-credential-NAME get` reads a server
// URL on stdin and prints {"ServerURL": .., "Username": .., "Secret": ..}.
// Named by an auth file's "credHelpers" (per registry) or "credsStore" (all).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "ocifs/status.h"
#include "registry/auth_config.h"

namespace ocifs {

// Runs `docker-credential-<name> get` (found on PATH) for `server_url`.
// Returns the credentials, or nullopt when the helper says it has none
// (exit status non-zero with "credentials not found" on stdout, as the
// helpers print). Errors: kNotFound when there is no such helper on PATH,
// kUnavailable when it fails, times out (`timeout`, then it is killed) or
// prints something that is not its JSON answer; kUnsupported for an
// identity token (Username "<token>"). Messages name the helper and the
// server, never the helper's output: it holds the secret. The secret never
// reaches argv, the environment or a log.
[[nodiscard]] Result<std::optional<Credentials>> RunCredentialHelper(
    std::string_view name, const std::string& server_url,
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The server URL docker hands a helper for `registry`: "https://index.docker.io/v1/"
// for Docker Hub, else the registry's host[:port].
std::string CredentialHelperServerUrl(std::string_view registry);

}  // namespace ocifs
