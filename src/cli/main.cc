// oci-fs: mount VM disk images from OCI registries, lazily.
#include <CLI/CLI.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "cli/accel_command.h"
#include "cli/image_commands.h"
#include "cli/keeper_commands.h"
#include "cli/mount_command.h"
#ifdef OCIFS_WITH_CSI
#include "csi/csi_command.h"
#endif

namespace {

// mount(8) runs `oci-fs REF DIR -o OPTS` for `mount -t fuse.oci-fs REF DIR`:
// a first argument that is no subcommand means "mount".
std::vector<std::string> Arguments(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  static const char* kCommands[] = {"inspect", "ls", "cat", "mount", "accelerate", "csi", "version",
                                    "keeper", "status", "restart"};
  if (args.size() >= 3 && args[1][0] != '-' &&
      std::find_if(std::begin(kCommands), std::end(kCommands),
                   [&](const char* c) { return args[1] == c; }) == std::end(kCommands)) {
    args.insert(args.begin() + 1, "mount");
  }
  return args;
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
// LeakSanitizer: libfuse 3.14 keeps a strdup of the mount point in the
// session and frees it only in fuse_session_unmount, which also unmounts. A
// kept mount's first serving process hands the mount to its keeper and must
// not unmount, so those 44-odd bytes stay allocated until the process exits
// (one per process, docs/keeper.md). Nothing else is suppressed.
extern "C" const char* __lsan_default_suppressions() { return "leak:fuse_session_mount\n"; }
#endif

int main(int argc, char** argv) {
  std::vector<std::string> args = Arguments(argc, argv);
  if (args.size() >= 2 && args[1] == "keeper") return ocifs::RunKeeperCommand(args);  // docs/keeper.md
  CLI::App app{"oci-fs: mount VM disk images from OCI registries, lazily"};
  app.require_subcommand(1);
  int exit_code = 0;
  ocifs::ImageCommandFlags image_flags;
  ocifs::MountFlags mount_flags;
  ocifs::AddInspectCommand(&app, &image_flags, &exit_code);
  ocifs::AddLsCommand(&app, &image_flags, &exit_code);
  ocifs::AddCatCommand(&app, &image_flags, &exit_code);
  mount_flags.argv = args;  // a kept mount's servers run the same command line
  ocifs::AddMountCommand(&app, &mount_flags, &exit_code);
  ocifs::AddStatusCommand(&app, &exit_code);
  ocifs::AddRestartCommand(&app, &exit_code);
  ocifs::AccelerateFlags accelerate_flags;
  ocifs::AddAccelerateCommand(&app, &accelerate_flags, &exit_code);
#ifdef OCIFS_WITH_CSI
  ocifs::CsiOptions csi_options;
  std::string csi_tls_verify = "true";
  CLI::App* csi = app.add_subcommand("csi", "run the CSI node plugin (docs/kubernetes.md)");
  csi->add_option("--endpoint", csi_options.endpoint, "unix:///PATH/csi.sock")->required();
  csi->add_option("--node-id", csi_options.node_id, "this node's name")->required();
  csi->add_option("--state-dir", csi_options.state_dir, "volume records (default /var/lib/oci-fs/csi)");
  csi->add_option("--cache-dir", csi_options.cache_dir, "chunk cache shared by every volume's mount");
  csi->add_option("--cert-dir", csi_options.cert_dir, "node-wide --cert-dir for every mount");
  csi->add_option("--authfile", csi_options.authfile, "node-wide --authfile for every mount");
  csi->add_option("--tls-verify", csi_tls_verify, "node-wide --tls-verify for every mount");
  csi->add_option("--oci-fs", csi_options.oci_fs_binary, "the oci-fs executable to launch (default: this one)");
  csi->add_option("--mount-cgroup", csi_options.mount_cgroup,
                  "cgroup v2 directory for the volumes' mount processes, outside the plugin's own");
  csi->add_option("--registries-conf", csi_options.registries_conf, "node-wide --registries-conf for every mount");
  csi->add_option("--stall-timeout", csi_options.stall_timeout, "node-wide --stall-timeout for every mount (seconds)")
      ->check(CLI::PositiveNumber);
  csi->add_option("--registry-timeout", csi_options.registry_timeout,
                  "node-wide --registry-timeout for every mount (seconds)")
      ->check(CLI::PositiveNumber);
  csi->add_option("--image-credential-provider-config", csi_options.image_credential_provider_config,
                  "kubelet CredentialProviderConfig (YAML or JSON): provider plugins for volumes without a secret");
  csi->add_option("--image-credential-provider-bin-dir", csi_options.image_credential_provider_bin_dir,
                  "directory of the credential provider plugins");
  csi->add_option("--metrics-address", csi_options.metrics_address, "serve Prometheus /metrics on HOST:PORT");
  csi->callback([&] {
    if (csi_tls_verify != "true" && csi_tls_verify != "false") {
      std::cerr << "oci-fs: --tls-verify must be true or false\n";
      exit_code = 2;
      return;
    }
    csi_options.tls_verify = csi_tls_verify == "true";
    exit_code = ocifs::RunCsiCommand(csi_options);
  });
#endif
  // `oci-fs --version` and `oci-fs version` print the same line and exit 0.
  app.set_version_flag("--version", "oci-fs " OCIFS_VERSION, "print the version and exit");
  app.add_subcommand("version", "print the version")->callback([] { std::cout << "oci-fs " OCIFS_VERSION "\n"; });

  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  try {
    app.parse(static_cast<int>(cargs.size()), cargs.data());
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return exit_code;
}
