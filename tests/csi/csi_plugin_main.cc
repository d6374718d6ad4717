// ocifs-csi-plugin: `oci-fs csi` on its own, for the integration tests.
// Same options as the subcommand (docs/cli.md), plus --oci-fs to choose the
// oci-fs executable the plugin launches.
#include <CLI/CLI.hpp>

#include "csi/csi_command.h"

int main(int argc, char** argv) {
  ocifs::CsiOptions opts;
  std::string tls_verify = "true";
  CLI::App app{"oci-fs CSI node plugin (test driver)"};
  app.add_option("--endpoint", opts.endpoint)->required();
  app.add_option("--node-id", opts.node_id)->required();
  app.add_option("--state-dir", opts.state_dir);
  app.add_option("--cache-dir", opts.cache_dir);
  app.add_option("--cert-dir", opts.cert_dir);
  app.add_option("--authfile", opts.authfile);
  app.add_option("--tls-verify", tls_verify);
  app.add_option("--oci-fs", opts.oci_fs_binary);
  CLI11_PARSE(app, argc, argv);
  opts.tls_verify = tls_verify != "false";
  return ocifs::RunCsiCommand(opts);
}
