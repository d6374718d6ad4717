#include "config/mount_config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "config/option_table.h"

namespace ocifs {
namespace {

// The usage error for option `name` of `config`, spelled as the user did.
Status Refuse(const MountConfig& config, std::string_view name, std::string_view expect) {
  const MountOption* option = FindOption(name);
  if (option == nullptr) return Internal("no mount option " + std::string(name));
  auto it = config.spelled.find(std::string(name));
  Spelled spelled = it != config.spelled.end()
                        ? it->second
                        : Spelled{SpelledName(*option, Spelling::kFlag), option->format(config)};
  return Refusal(spelled, *option, expect);
}

bool ValidChunkSize(uint64_t size) {
  return size >= MountConfig::kMinChunkSize && size <= MountConfig::kMaxChunkSize && (size & (size - 1)) == 0;
}

}  // namespace

Status Validate(const MountConfig& config) {
  if (!ValidChunkSize(config.chunk_size)) {
    return Refuse(config, "chunk-size", "a power of two from 64K to 16M");
  }
  if (config.decode_threads && *config.decode_threads > MountConfig::kMaxDecodeThreads) {
    return Refuse(config, "decode-threads", "{auto} or a number from 0 to 64");
  }
  if (!config.creds.empty() && config.creds.find(':') == std::string::npos) {
    return Refuse(config, "creds", "USER:PASS");
  }
  return Status::Ok();
}

void MakePathsAbsolute(MountConfig* config, const std::string& cwd) {
  for (const MountOption& option : MountOptions()) {
    if (option.path == nullptr) continue;
    std::string& path = config->*option.path;
    if (path.empty()) continue;
    std::filesystem::path p(path);
    if (p.is_relative()) p = std::filesystem::path(cwd) / p;
    path = p.lexically_normal().string();
  }
}

RegistryOptions ToRegistryOptions(const MountConfig& config) {
  RegistryOptions options;
  if (!config.creds.empty()) options.creds = config.creds;
  options.authfile = config.authfile;
  options.cert_dir = config.cert_dir;
  options.tls_verify = config.tls_verify;
  options.platform = config.platform;
  options.registries_conf = config.registries_conf;
  options.stall_timeout_seconds = config.stall_timeout;
  options.registry_timeout_seconds = config.registry_timeout;
  return options;
}

std::string DefaultCacheDir() {
  if (::geteuid() == 0) return "/var/cache/oci-fs";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/oci-fs";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/tmp") + "/.cache/oci-fs";
}

std::string FormatSize(uint64_t bytes) {
  static constexpr struct {
    int shift;
    char suffix;
  } kUnits[] = {{40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
  if (bytes != 0) {
    for (const auto& unit : kUnits) {
      const uint64_t one = 1ull << unit.shift;
      if (bytes % one == 0) return std::to_string(bytes / one) + unit.suffix;
    }
  }
  return std::to_string(bytes);
}

}  // namespace ocifs
