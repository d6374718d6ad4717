// oci-fs-csi: the CSI node plugin's executable (docs/kubernetes.md).
//
// `oci-fs csi ARGS` execs this binary (its sibling) with ARGS: the plugin
// links gRPC and protobuf (48 shared libraries), which every `oci-fs mount`
// process would otherwise load and relocate at each start (~18 ms and ~3 MiB
// of PSS a process on the bench machine, docs/benchmarks.md).
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "csi/csi_command.h"

int main(int argc, char** argv) {
  ocifs::CsiOptions options;
  std::string tls_verify = "true";
  CLI::App app{"oci-fs csi: the CSI node plugin (docs/kubernetes.md)", "oci-fs csi"};
  app.add_option("--endpoint", options.endpoint, "unix:///PATH/csi.sock")->required();
  app.add_option("--node-id", options.node_id, "this node's name")->required();
  app.add_option("--state-dir", options.state_dir, "volume records (default /var/lib/oci-fs/csi)");
  app.add_option("--cache-dir", options.cache_dir, "chunk cache shared by every volume's mount");
  app.add_option("--cert-dir", options.cert_dir, "node-wide --cert-dir for every mount");
  app.add_option("--authfile", options.authfile, "node-wide --authfile for every mount");
  app.add_option("--tls-verify", tls_verify, "node-wide --tls-verify for every mount");
  app.add_option("--oci-fs", options.oci_fs_binary, "the oci-fs executable to launch (default: the one beside this)");
  app.add_option("--mount-cgroup", options.mount_cgroup,
                 "cgroup v2 directory for the volumes' mount processes, outside the plugin's own");
  app.add_option("--registries-conf", options.registries_conf, "node-wide --registries-conf for every mount");
  app.add_option("--stall-timeout", options.stall_timeout, "node-wide --stall-timeout for every mount (seconds)")
      ->check(CLI::PositiveNumber);
  app.add_option("--registry-timeout", options.registry_timeout,
                 "node-wide --registry-timeout for every mount (seconds)")
      ->check(CLI::PositiveNumber);
  app.add_option("--image-credential-provider-config", options.image_credential_provider_config,
                 "kubelet CredentialProviderConfig (YAML or JSON): provider plugins for volumes without a secret");
  app.add_option("--image-credential-provider-bin-dir", options.image_credential_provider_bin_dir,
                 "directory of the credential provider plugins");
  app.add_option("--metrics-address", options.metrics_address, "serve Prometheus /metrics on HOST:PORT");
  app.set_version_flag("--version", "oci-fs-csi " OCIFS_VERSION, "print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (tls_verify != "true" && tls_verify != "false") {
    std::cerr << "oci-fs: --tls-verify must be true or false\n";
    return 2;
  }
  options.tls_verify = tls_verify == "true";
  return ocifs::RunCsiCommand(options);
}
