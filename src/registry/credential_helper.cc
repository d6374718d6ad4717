#include "registry/credential_helper.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "registry/piped_command.h"

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
  PipedCommand cmd;
  cmd.program = program;
  cmd.args = {"get"};
  cmd.input = server_url;
  cmd.timeout = timeout;
  cmd.search_path = true;
  cmd.capture_stderr = false;
  cmd.max_out = kMaxAnswerBytes;
  cmd.what = "credential helper " + program;
  OCIFS_ASSIGN_OR_RETURN(PipedResult run, RunPiped(cmd));  // run.out holds the secret: never log it
  if (run.timed_out) {
    return Unavailable(what + " did not answer in " + std::to_string(timeout.count() / 1000) + " s");
  }
  if (run.exit_code != 0) {
    // The helpers print "credentials not found in native keychain" for an unknown server.
    if (run.out.find("credentials not found") != std::string::npos) {
      spdlog::debug("{}: no credentials", what);
      return std::optional<Credentials>();
    }
    return Unavailable(what + " failed (" +
                       (run.exit_code < 0 ? std::string("killed by a signal")
                                          : "exit status " + std::to_string(run.exit_code)) +
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
