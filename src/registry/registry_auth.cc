#include "registry/registry_auth.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "registry/base64.h"

namespace ocifs {

std::string PullScope(std::string_view repository) { return "repository:" + std::string(repository) + ":pull"; }
std::string PushScope(std::string_view repository) { return PullScope(repository) + ",push"; }

RegistryAuth::RegistryAuth(std::string registry, std::optional<Credentials> creds, const HttpClient* http,
                           CredentialLoader reload)
    : registry_(std::move(registry)), http_(http), reload_(std::move(reload)), creds_(std::move(creds)) {}

std::string RegistryAuth::BasicHeader(const Credentials& creds) {
  return "Basic " + Base64Encode(creds.username + ":" + creds.password);
}

std::optional<Credentials> RegistryAuth::CurrentCredentials() const {
  std::lock_guard lock(mu_);
  return creds_;
}

bool RegistryAuth::has_credentials() const {
  std::lock_guard lock(mu_);
  return creds_.has_value();
}

bool RegistryAuth::ReloadCredentials() {
  if (!reload_) return false;
  std::lock_guard fetch_lock(fetch_mu_);
  auto loaded = reload_();
  if (!loaded.ok()) {
    spdlog::warn("registry {}: reading the credentials again failed: {}", registry_, loaded.status().message());
    return false;
  }
  std::optional<Credentials> now = std::move(loaded).value();
  {
    std::lock_guard lock(mu_);
    bool same = now.has_value() == creds_.has_value() &&
                (!now || (now->username == creds_->username && now->password == creds_->password));
    if (same) return false;
    creds_ = std::move(now);
  }
  tokens_.Clear();
  spdlog::info("registry {}: the credentials changed; using the new ones", registry_);
  return true;
}

Status RegistryAuth::RefusedError(const std::string& scope) const {
  if (has_credentials()) return Unauthenticated("registry " + registry_ + " refused the credentials for " + scope + " (401)");
  return Unauthenticated("registry " + registry_ + " requires authentication for " + scope +
                         " (401); give --creds or --authfile");
}

Status RegistryAuth::PushRefusedError(std::string_view repository, const std::string& scope, long http_status,
                                      std::string_view detail) const {
  const bool creds = has_credentials();
  std::string who = creds ? "these credentials" : "anonymous access";
  std::string msg = "registry " + registry_ + " refused to let " + who + " push to " + std::string(repository) +
                    " (scope " + scope + "): " + std::string(detail);
  if (!creds && detail.find("give --creds") == std::string_view::npos) msg += "; give --creds or --authfile";
  return Status(http_status == 403 ? Code::kPermissionDenied : Code::kUnauthenticated, std::move(msg));
}

Result<std::string> RegistryAuth::Authorization(const std::string& scope,
                                                std::optional<std::chrono::steady_clock::time_point> deadline) {
  std::optional<AuthChallenge> ch;
  {
    std::lock_guard lock(mu_);
    ch = challenge_;
  }
  if (!ch) return std::string();
  if (ch->scheme == "basic") {
    auto creds = CurrentCredentials();
    return creds ? BasicHeader(*creds) : std::string();
  }
  if (auto t = tokens_.Get(scope)) return "Bearer " + *t;
  std::lock_guard fetch_lock(fetch_mu_);
  if (auto t = tokens_.Get(scope)) return "Bearer " + *t;  // another thread fetched it
  OCIFS_ASSIGN_OR_RETURN(std::string token, FetchToken(*ch, scope, deadline));
  return "Bearer " + token;
}

Status RegistryAuth::OnUnauthorized(const HttpHeaders& headers, const std::string& scope) {
  std::optional<AuthChallenge> bearer, basic;
  for (const auto& value : headers.GetAll("www-authenticate")) {
    for (auto& ch : ParseWwwAuthenticate(value)) {
      if (ch.scheme == "bearer" && !bearer) bearer = ch;
      if (ch.scheme == "basic" && !basic) basic = ch;
    }
  }
  tokens_.Invalidate(scope);
  std::lock_guard lock(mu_);
  if (bearer) {
    if (bearer->Param("realm").empty()) {
      return Unauthenticated("registry " + registry_ + " sent a Bearer challenge without a realm (401)");
    }
    challenge_ = bearer;
    return Status::Ok();
  }
  if (basic) {
    if (!creds_) {
      return Unauthenticated("registry " + registry_ + " requires authentication for " + scope +
                             " (401); give --creds or --authfile");
    }
    challenge_ = basic;
    return Status::Ok();
  }
  return Unauthenticated("registry " + registry_ + " answered 401 for " + scope +
                         " without a supported WWW-Authenticate challenge");
}

Result<std::string> RegistryAuth::FetchToken(const AuthChallenge& ch, const std::string& scope,
                                             std::optional<std::chrono::steady_clock::time_point> deadline) {
  std::string realm = ch.Param("realm");
  if (!realm.starts_with("https://") && !realm.starts_with("http://")) {
    return Unauthenticated("registry " + registry_ + ": token realm \"" + HttpClient::Redact(realm) +
                           "\" is not an http(s) URL");
  }
  HttpRequest req;
  req.url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
  std::string service = ch.Param("service");
  if (!service.empty()) req.url += "service=" + HttpClient::Escape(service) + "&";
  req.url += "scope=" + HttpClient::Escape(scope);
  req.peer = "token server";
  req.max_body = 1 << 20;
  req.deadline = deadline;
  const auto creds = CurrentCredentials();
  if (creds) req.headers.push_back("Authorization: " + BasicHeader(*creds));
  OCIFS_ASSIGN_OR_RETURN(HttpResponse resp, http_->Perform(req));
  if (resp.status == 401 || resp.status == 403) {
    if (creds) {
      return Unauthenticated("registry " + registry_ + " refused the credentials for " + scope +
                             " (token server answered " + std::to_string(resp.status) + ")");
    }
    return Unauthenticated("registry " + registry_ + " requires authentication for " + scope +
                           " (token server answered " + std::to_string(resp.status) + "); give --creds or --authfile");
  }
  if (resp.status != 200) {
    return Unavailable("token server " + HttpClient::HostPort(realm) + " of registry " + registry_ + " answered HTTP " +
                       std::to_string(resp.status) + " for " + scope);
  }
  // Never quote the body: it holds the token.
  nlohmann::json j = nlohmann::json::parse(resp.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Unavailable("token server " + HttpClient::HostPort(realm) + " sent a reply that is not a JSON object");
  }
  std::string token;
  for (const char* key : {"token", "access_token"}) {
    auto it = j.find(key);
    if (it != j.end() && it->is_string() && !it->get<std::string>().empty()) {
      token = it->get<std::string>();
      break;
    }
  }
  if (token.empty()) {
    return Unavailable("token server " + HttpClient::HostPort(realm) + " sent no token or access_token");
  }
  int64_t expires_in = 60;
  auto exp = j.find("expires_in");
  if (exp != j.end() && exp->is_number_integer()) expires_in = std::clamp<int64_t>(exp->get<int64_t>(), 1, 86400);
  tokens_.Put(scope, token, std::chrono::seconds(expires_in));
  spdlog::debug("registry {}: got a token for {} valid {} s", registry_, scope, expires_in);
  return token;
}

}  // namespace ocifs
