// `oci-fs csi` (the oci-fs-csi executable): the CSI node plugin
// (docs/kubernetes.md, docs/cli.md).
//
// RunCsiCommand serves the CSI Identity and Node services on a unix socket
// until SIGTERM or SIGINT, then returns 0; mounts stay up (they belong to
// their own `oci-fs mount` processes) and are adopted by the next start.
// It returns 1 with a message on stderr if it cannot start.
#pragma once

#include <string>

namespace ocifs {

struct CsiOptions {
  std::string endpoint;  // unix:///PATH/csi.sock
  std::string node_id;
  std::string state_dir = "/var/lib/oci-fs/csi";
  std::string cache_dir;  // "" = oci-fs mount's default
  std::string oci_fs_binary;  // the oci-fs executable to launch: "" = the `oci-fs` beside this executable
  // A cgroup v2 directory for the volumes' mount processes, outside the
  // plugin's cgroup (mount_cgroup.h); "" = they stay in the plugin's.
  std::string mount_cgroup;
  // Node-wide registry defaults for every volume.
  std::string cert_dir, authfile;
  bool tls_verify = true;
  // Node-wide registries.conf and timeouts of every mount ("" and 0: oci-fs
  // mount's defaults).
  std::string registries_conf;
  long stall_timeout = 0, registry_timeout = 0;  // seconds
  // Kubelet credential provider plugins for volumes without a secret
  // (docs/kubernetes.md); "" = none.
  std::string image_credential_provider_config, image_credential_provider_bin_dir;
  std::string metrics_address;  // HOST:PORT serving /metrics (docs/metrics.md); "" = none
};

int RunCsiCommand(const CsiOptions& options);

// "unix:///a/b.sock" or "unix:/a/b.sock" -> "/a/b.sock"; "" if not a unix endpoint.
std::string SocketPathFromEndpoint(const std::string& endpoint);

}  // namespace ocifs
