// RegistryAuth: the Authorization header for one registry, learned from its
// 401 challenges: Basic (credentials), or Bearer tokens fetched from the realm
// (anonymously or with Basic credentials), cached per scope until near expiry.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "ocifs/status.h"
#include "registry/auth_config.h"
#include "registry/http_client.h"
#include "registry/token_cache.h"
#include "registry/www_authenticate.h"

namespace ocifs {

// "repository:<repo>:pull"
std::string PullScope(std::string_view repository);
// "repository:<repo>:pull,push"
std::string PushScope(std::string_view repository);

// Reads a registry's credentials again (its auth file, credential helper):
// called when the registry or its token server refuses the ones in use.
using CredentialLoader = std::function<Result<std::optional<Credentials>>()>;

// Thread safety: safe for concurrent use. Lock order: fetch_mu_ before mu_.
// Holds credentials and tokens: never logs them, and no message contains them.
// Borrows `http`, which must outlive it.
class RegistryAuth {
 public:
  // `reload` (may be empty: the credentials never change) is how
  // ReloadCredentials reads them again.
  RegistryAuth(std::string registry, std::optional<Credentials> creds, const HttpClient* http,
               CredentialLoader reload = {});
  RegistryAuth(const RegistryAuth&) = delete;
  RegistryAuth& operator=(const RegistryAuth&) = delete;

  // The Authorization header value ("Bearer ..", "Basic ..") for `scope`, or
  // "" while no challenge is known. May fetch a token (blocking): no attempt
  // of it starts after `deadline` (the operation's), when given; else the
  // token request has the client's own bound.
  [[nodiscard]] Result<std::string> Authorization(
      const std::string& scope, std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

  // Learns from a 401 (its WWW-Authenticate) and forgets the refused token.
  // kUnauthenticated if no supported challenge, or credentials are needed and
  // there are none.
  [[nodiscard]] Status OnUnauthorized(const HttpHeaders& headers, const std::string& scope);

  // Reads the credentials again through the loader, after a refusal: a
  // volume's auth file rewritten with a rotated secret, a helper's new
  // password. True when they changed (cached tokens are then forgotten and
  // the caller may retry once); false when they did not, there is no loader,
  // or it failed (logged without the secret). Blocks for the loader.
  bool ReloadCredentials();

  bool has_credentials() const;
  // The error for a 401 that persists after OnUnauthorized.
  Status RefusedError(const std::string& scope) const;
  // The error for a push operation the registry (or its token server)
  // refused: kPermissionDenied for 403, else kUnauthenticated, "registry R
  // refused to let these credentials push to REPO (scope S): <detail>" (or
  // "anonymous access ...; give --creds or --authfile"). `detail` must hold no
  // secret (a status line, the registry's error text).
  Status PushRefusedError(std::string_view repository, const std::string& scope, long http_status,
                          std::string_view detail) const;

 private:
  Result<std::string> FetchToken(const AuthChallenge& challenge, const std::string& scope,
                                 std::optional<std::chrono::steady_clock::time_point> deadline);
  std::optional<Credentials> CurrentCredentials() const;
  static std::string BasicHeader(const Credentials& creds);

  const std::string registry_;
  const HttpClient* http_;
  const CredentialLoader reload_;
  std::mutex fetch_mu_;                      // serializes token fetches and reloads
  mutable std::mutex mu_;
  std::optional<Credentials> creds_;        // guarded by mu_
  std::optional<AuthChallenge> challenge_;  // guarded by mu_
  TokenCache tokens_;
};

}  // namespace ocifs
