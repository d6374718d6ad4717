// The one table of mount options. Each option has its CLI flag, its `-o`
// key and (where it has one) its CSI volume attribute, a parser into its
// typed MountConfig field and its help text: the CLI's flags, mount(8)'s
// `-o` options, the CSI attributes and ToArgs are all produced from it.
//
// Immutable static data: safe for concurrent use.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "config/mount_config.h"

namespace ocifs {

// Where a value came from; decides how the option is named in a message.
enum class Spelling { kFlag, kMountOption, kVolumeAttribute };

enum class OptionGroup {
  kRegistry,  // registry access: every subcommand takes it (inspect too)
  kLogging,   // every subcommand
  kMount,     // `oci-fs mount` only
};

struct MountOption {
  std::string_view name;       // the flag without "--": "chunk-size"
  std::string_view key;        // the -o key: "chunk_size"
  std::string_view attribute;  // the CSI volume attribute: "chunkSize"; "" = none
  std::string_view value_name;  // "SIZE" in help; "" = a switch (no value on the command line)
  OptionGroup group;
  bool secret;  // never in argv, logs or messages
  std::string_view help;
  // Parses `value` into the option's field. Returns "" on success, else
  // what the value must be, choices in braces: "{on} or {off}".
  std::string_view (*parse)(std::string_view value, Spelling how, MountConfig* config);
  // The field's value as the flag would take it ("" for a switch that is off).
  std::string (*format)(const MountConfig& config);
  // The host path it holds, made absolute by MakePathsAbsolute; nullptr if none.
  std::string MountConfig::*path;
};

// Every option, in the order of `oci-fs mount --help` and ToArgs.
std::span<const MountOption> MountOptions();
// The option named `name` (its flag without "--"); nullptr if none.
const MountOption* FindOption(std::string_view name);

// How `option` is named when given as `how`: "--chunk-size", "-o chunk_size",
// "volume attribute chunkSize".
std::string SpelledName(const MountOption& option, Spelling how);

// The usage error for `option` given `value` as `how`, which must be
// `expect`: "--miss-fetch must be exact or chunk, not 'some'"; for a
// volume attribute the choices and the value are in double quotes. A secret
// option's value is never quoted.
Status Refusal(const Spelled& spelled, const MountOption& option, std::string_view expect);

}  // namespace ocifs
