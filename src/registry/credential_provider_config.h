// The kubelet's image credential provider configuration
// (CredentialProviderConfig, kubelet.config.k8s.io/v1), as `oci-fs csi
// --image-credential-provider-config FILE` reads it, and the kubelet's rule
// for which images a provider serves (matchImages). docs/kubernetes.md,
// "Credential provider plugins".
//
// Plain functions and value types; no state.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

// One `providers[]` entry: an exec plugin BIN_DIR/name.
struct CredentialProviderSpec {
  std::string name;                       // the executable's file name in the bin dir
  std::vector<std::string> match_images;  // patterns (ImageMatches); at least one
  std::chrono::milliseconds default_cache_duration{0};
  // The CredentialProviderRequest/Response apiVersion:
  // credentialprovider.kubelet.k8s.io/v1 (or v1beta1, v1alpha1: same schema).
  std::string api_version;
  std::vector<std::string> args;                            // after the program name
  std::vector<std::pair<std::string, std::string>> env;     // added to the plugin's environment
};

struct CredentialProviderConfig {
  std::vector<CredentialProviderSpec> providers;  // in the file's order
};

// Parses the file's text, YAML or JSON as the kubelet accepts (YAML is a
// superset of JSON). Refuses, naming the file and the field: another kind or
// apiVersion (kubelet.config.k8s.io/v1, v1beta1, v1alpha1), an unknown field
// (a typo is not ignored; tokenAttributes, the service account token route,
// is named as not supported), a missing name, matchImages,
// defaultCacheDuration or apiVersion, a name that is not a plain file name, a
// duplicate name, a bad pattern or duration. `where` names the file in
// messages.
[[nodiscard]] Result<CredentialProviderConfig> ParseCredentialProviderConfig(std::string_view text,
                                                                             const std::string& where);
// Reads and parses `path` (at most 1 MiB).
[[nodiscard]] Result<CredentialProviderConfig> LoadCredentialProviderConfig(const std::string& path);

// A Go duration (time.ParseDuration): "12h", "1h30m", "0.5s", "300ms", "0".
// Negative durations are refused. kInvalidArgument quoting the text.
[[nodiscard]] Result<std::chrono::milliseconds> ParseGoDuration(std::string_view text);

// The kubelet's match of a matchImages (or response auth key) pattern against
// an image "host[:port]/path" (no tag): both hosts have the same number of dot-separated parts and each part matches
// its glob (`*`, `?`, `[...]` within one part: "*.azurecr.io" matches
// "a.azurecr.io", not "a.b.azurecr.io" nor "azurecr.io"); the ports are equal
// (a port on either side must be on both); the pattern's path is a string
// prefix of the image's path.
bool ImageMatches(std::string_view pattern, std::string_view image);

// kInvalidArgument when `pattern` is empty, holds white space or a scheme
// ("https://"), or a '[' without its ']', naming it.
[[nodiscard]] Status ValidateImagePattern(std::string_view pattern);

}  // namespace ocifs
