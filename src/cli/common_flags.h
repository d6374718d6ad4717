// Flags shared by the subcommands: registry access and logging.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "base/size_text.h"
#include "ocifs/status.h"
#include "registry/registry_options.h"

namespace ocifs {

struct CommonFlags {
  std::string creds;  // never logged
  std::string authfile;
  std::string cert_dir;
  std::string tls_verify = "true";
  std::string platform;
  std::string registries_conf;
  long stall_timeout = 10;     // seconds
  long registry_timeout = 20;  // seconds
  std::string log_level = "warn";
  std::string log_file;
};

// Registers --creds, --authfile, --cert-dir, --tls-verify, --platform,
// --registries-conf, --stall-timeout, --registry-timeout, --log-level and
// --log-file on `app`.
void AddCommonFlags(CLI::App* app, CommonFlags* flags);

[[nodiscard]] Result<RegistryOptions> ToRegistryOptions(const CommonFlags& flags);

// Sets up spdlog from --log-level and --log-file (stderr when empty).
[[nodiscard]] Status ConfigureLogging(const CommonFlags& flags);
[[nodiscard]] Status ConfigureLogging(const std::string& level, const std::string& file);


// "true"/"false"/"1"/"0"/"yes"/"no".
[[nodiscard]] Result<bool> ParseBool(std::string_view text, std::string_view what);

// Prints "oci-fs: <status>" to stderr and returns exit status 1.
int Fail(const Status& status);

}  // namespace ocifs
