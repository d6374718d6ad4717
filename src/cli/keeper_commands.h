// The commands around kept mounts (docs/keeper.md, docs/cli.md):
//   oci-fs keeper ... -- SERVER-ARGS   the keeper itself (started by `mount`)
//   oci-fs status [--json] [DIR...]    what the kept mounts publish
//   oci-fs restart [--binary PATH] DIR a new serving process takes DIR over
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace ocifs {

// `args` is the whole argv ("oci-fs", "keeper", ...); returns the exit status.
int RunKeeperCommand(const std::vector<std::string>& args);

// Replaces this process by a keeper of `mountpoint` whose servers run
// `mount_args` (the mount's whole argv, "oci-fs" "mount" ...; "-f" added). `ready_fd` (or
// -1) is inherited and learns when the mount is ready. Returns only on error.
int ExecKeeper(const std::vector<std::string>& mount_args, const std::string& reference,
               const std::string& mountpoint, const std::string& log_level, const std::string& log_file,
               int ready_fd);

void AddStatusCommand(CLI::App* app, int* exit_code);
void AddRestartCommand(CLI::App* app, int* exit_code);

}  // namespace ocifs
