// Credentials of one volume: a docker config JSON taken from the
// NodePublishVolume secrets (a kubernetes.io/dockerconfigjson Secret named
// by nodePublishSecretRef: kubelet passes its data, key ".dockerconfigjson").
//
// They reach the `oci-fs` processes of that volume only, as a 0600 file
// passed with --authfile; never argv, logs or error messages.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "ocifs/status.h"

namespace ocifs {

// nullopt when there are no secrets; InvalidArgument (naming keys, never
// values) when they are not one valid ".dockerconfigjson" entry.
Result<std::optional<std::string>> DockerConfigFromSecrets(
    const std::map<std::string, std::string>& secrets);

// Writes `content` to `path` with mode 0600, atomically (temp file + rename),
// creating the parent directory (0700) if needed.
Status WriteAuthFile(const std::string& path, const std::string& content);

// Removes `path`; a missing file is not an error.
void RemoveAuthFile(const std::string& path);

}  // namespace ocifs
