// RegistryOptions: how to reach a registry (the CLI's registry options).
#pragma once

#include <optional>
#include <string>

namespace ocifs {

// Plain value type. Holds secrets (creds): never log or print it.
struct RegistryOptions {
  std::optional<std::string> creds;  // "USER:PASS" from --creds; never logged
  std::string authfile;              // explicit --authfile; empty = default search
  std::string cert_dir;              // --cert-dir; empty = certs.d of the host, if present
  bool tls_verify = true;            // false: accept unverified TLS, and plain HTTP
  std::string platform;              // "os/arch[/variant]"; empty = host
  int max_retries = 4;               // retries after the first attempt
  long connect_timeout_seconds = 10;
  // --stall-timeout: an attempt that receives no byte for this long (seconds)
  // is abandoned and retried on a fresh connection.
  long stall_timeout_seconds = 10;
  // --registry-timeout: how long one registry operation (a manifest, one blob
  // range, with its retries, scheme probe and mirror) may wait without
  // progress before it fails, in seconds. A transfer that makes progress is
  // never cut.
  long registry_timeout_seconds = 20;
  // --registries-conf: a containers-registries.conf(5) file; empty = the
  // system's (/etc/containers/registries.conf and registries.conf.d/).
  std::string registries_conf;
  // Where FetchBlob keeps the small blobs it fetched whole (image configs),
  // one file per digest, verified on every use; empty = not kept.
  std::string small_blob_dir;
  // Ask for push access too (scope "repository:<repo>:pull,push"), for
  // RegistryWriter; reading needs only pull.
  bool push = false;
};

}  // namespace ocifs
