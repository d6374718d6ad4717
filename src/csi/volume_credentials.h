// VolumeCredentials: where a volume's registry credentials come from, and
// keeping its credentials file current while the volume lives.
//
//  - A volume published with a nodePublishSecretRef uses that secret (a
//    kubernetes.io/dockerconfigjson). kubelet publishes it again with the
//    Secret's current data (CSIDriver requiresRepublish: true): a rotated
//    secret is written over the volume's file, which its mount reads again
//    when the registry refuses the old credentials.
//  - A volume without one, when `oci-fs csi` was given kubelet credential
//    provider plugins (--image-credential-provider-config, -bin-dir) and one
//    matches the image, uses the provider's credentials (CredentialProviders),
//    written as a docker config for the image's registry. They are asked
//    again when the provider's cacheDuration runs out (at least 10 s apart),
//    and the file is rewritten when they changed.
//  - Else the volume has no file: the node's --authfile, or anonymous.
//
// The file is the only way credentials reach a mount (--authfile PATH):
// never argv, logs or messages. Thread-safe: the refresh times are guarded
// by one mutex; callers serialize the work on one target (VolumeManager's
// target lock).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "csi/volume_store.h"
#include "ocifs/status.h"
#include "registry/credential_provider.h"

namespace ocifs {

class VolumeCredentials {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kMinRefreshInterval = std::chrono::seconds(10);

  // Borrows both; `providers` may be null (none configured).
  VolumeCredentials(const VolumeStore* store, CredentialProviders* providers)
      : store_(store), providers_(providers) {}
  VolumeCredentials(const VolumeCredentials&) = delete;
  VolumeCredentials& operator=(const VolumeCredentials&) = delete;

  // Writes the credentials file of a new volume and sets record->auth_file
  // and auth_source: the secret's docker config if given, else a matching
  // provider's credentials, else nothing. Errors: a provider that failed
  // (kUnavailable, naming it and the image), the file not written.
  Status Prepare(VolumeRecord* record, const std::optional<std::string>& secret_config);

  // A repeated publish of a live volume: a secret whose data changed is
  // written over the volume's file (logged, without the data). A secret for
  // a volume published without one cannot reach its running mount: logged.
  Status Republish(const VolumeRecord& record, const std::optional<std::string>& secret_config);

  // The watcher's pass over one live volume whose credentials came from a
  // provider: asks again once they ran out, rewrites the file if they
  // changed. Failures are logged; the old file stays.
  void Refresh(const VolumeRecord& record, Clock::time_point now = Clock::now());

  // Forgets the refresh time of `target` (the volume is gone).
  void Forget(const std::string& target);

 private:
  // The provider's docker config for `image` and when to ask again; nullopt
  // when no provider has credentials for it.
  struct Provided {
    std::string config;
    Clock::time_point refresh_at;
  };
  Result<std::optional<Provided>> AskProviders(const std::string& image, Clock::time_point now);

  const VolumeStore* store_;
  CredentialProviders* providers_;
  std::mutex mu_;
  std::map<std::string, Clock::time_point> refresh_at_;  // target -> next ask; guarded by mu_
};

// The file's current text, or "" if it cannot be read.
std::string ReadAuthFile(const std::string& path);

}  // namespace ocifs
