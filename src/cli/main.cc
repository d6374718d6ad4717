// oci-fs: mount VM disk images from OCI registries, lazily.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "base/self_executable.h"
#include "cli/accel_command.h"
#include "cli/image_commands.h"
#include "cli/keeper_commands.h"
#include "cli/mount_command.h"

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

// `oci-fs csi ARGS` is the oci-fs-csi executable beside this one
// (src/csi/csi_main.cc), exec'd with ARGS: the gRPC libraries stay out of
// every other command's process. Returns only if the exec failed.
int ExecCsiPlugin(const std::vector<std::string>& args) {
  const std::string plugin = ocifs::SiblingExecutable("oci-fs-csi");
  std::vector<std::string> argv = {plugin};
  argv.insert(argv.end(), args.begin() + 2, args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  ::execv(plugin.c_str(), cargv.data());
  const int err = errno;
  std::cerr << "oci-fs: cannot run the CSI node plugin " << plugin << ": " << std::strerror(err)
            << (err == ENOENT ? " (it is built and installed beside oci-fs when gRPC is found: OCIFS_BUILD_CSI)" : "")
            << "\n";
  return 1;
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
  if (args.size() >= 2 && args[1] == "csi") return ExecCsiPlugin(args);
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
  // Listed for --help; `oci-fs csi` never reaches the parser (ExecCsiPlugin).
  app.add_subcommand("csi", "run the CSI node plugin, oci-fs-csi (docs/kubernetes.md)");
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
