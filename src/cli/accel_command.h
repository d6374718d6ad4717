// oci-fs accelerate: builds an image's acceleration artifact and pushes it
// next to the image (docs/accel-format.md).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/common_flags.h"

namespace ocifs {

struct AccelerateFlags {
  CommonFlags common;
  std::string reference;
  std::vector<std::string> profiles;  // --profile FILE, attached in order
  std::string to;                     // --to REPO: push there instead of next to the image
  std::string work_dir = "/var/tmp";  // --work-dir
  bool all_platforms = false;         // --all-platforms: one artifact per platform of an index
};

// Registers the subcommand; its callback stores the exit status in *exit_code.
void AddAccelerateCommand(CLI::App* app, AccelerateFlags* flags, int* exit_code);

}  // namespace ocifs
