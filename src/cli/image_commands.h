// oci-fs inspect, ls and cat: look into an image without mounting it.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/common_flags.h"

namespace ocifs {

struct ImageCommandFlags {
  CommonFlags common;
  std::string reference;
  std::string path;
  bool json = false;
  std::string cache_dir;  // optional: read layers through this cache
};

// Each registers its subcommand on `app`; the subcommand's callback runs it
// and stores the exit status in *exit_code.
void AddInspectCommand(CLI::App* app, ImageCommandFlags* flags, int* exit_code);
void AddLsCommand(CLI::App* app, ImageCommandFlags* flags, int* exit_code);
void AddCatCommand(CLI::App* app, ImageCommandFlags* flags, int* exit_code);

// "drwxr-xr-x" for a mode with its S_IFMT bits.
std::string ModeString(uint32_t mode);

}  // namespace ocifs
