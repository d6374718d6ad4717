// oci-fs mount: serve an image's VM disk (or whole tree) through FUSE.
//
// Its flags and `-o` options are the mount option table's
// (config/option_table.h); they give one MountConfig, validated, from which
// the mount runs. A usage error exits with status 2.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli/common_flags.h"
#include "config/config_builder.h"
#include "stack/image_stack.h"

namespace ocifs {

struct MountFlags {
  std::string reference;
  std::string mountpoint;
  bool foreground = false;
  bool no_keeper = false;          // serve in this process, without a keeper (docs/keeper.md)
  std::vector<std::string> argv;   // the whole command line, for the keeper's servers
  // The table's flags as given on the command line, and the -o lists.
  std::vector<std::pair<const MountOption*, std::string>> given;
  std::vector<std::string> options;
};

// Registers `oci-fs mount`: the table's flags, -o, -f, REF and DIR.
void AddMountCommand(CLI::App* app, MountFlags* flags, int* exit_code);

// Registers every option of the table on `app` as a flag
// ("--name VALUE" or a switch) that records itself in flags->given.
void AddMountOptions(CLI::App* app, MountFlags* flags);

// The configuration `flags` give: the flags, then the -o lists (a later one
// wins), host paths made absolute from `cwd`, validated. kInvalidArgument
// naming the option as spelled: a usage error.
[[nodiscard]] Result<MountConfig> BuildMountConfig(const MountFlags& flags, const std::string& cwd);

// The read path's options for `config` (loads --prefetch-profile's file).
[[nodiscard]] Result<StackOptions> ToStackOptions(const MountConfig& config);

}  // namespace ocifs
