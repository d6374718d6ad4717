// MountConfigBuilder: a MountConfig from the options as users spell them
// (CLI flags, mount(8)'s `-o` lists, CSI volume attributes), all through the
// one table (config/option_table.h); and ToArgs, the flags that spell a
// config back for `oci-fs mount`.
//
// Not thread-safe (a value being built); the config it builds is a value.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/mount_config.h"
#include "config/option_table.h"

namespace ocifs {

class MountConfigBuilder {
 public:
  // Starts from `base` (the defaults, or a CSI node's defaults).
  explicit MountConfigBuilder(MountConfig base = {}) : config_(std::move(base)) {}

  // Sets `option` from `value` given as `how`; kInvalidArgument naming the
  // option as spelled ("--mode must be disk or tree, not 'x'").
  [[nodiscard]] Status Set(const MountOption& option, Spelling how, std::string_view value);
  // A CLI flag by name, with or without its "--".
  [[nodiscard]] Status SetFlag(std::string_view name, std::string_view value);
  // One `-o` list (mount(8) style, "a,b=c", "\," escapes a comma). mount(8)'s
  // generic options (rw, ro, defaults, _netdev, nofail, x-*, comment=...) are
  // ignored; nodev, nosuid, noexec, noatime, nodiratime and auto_unmount are
  // kept in fuse_options; any other unknown key is kInvalidArgument naming it.
  [[nodiscard]] Status ApplyMountOptions(std::string_view list);
  // A CSI volume attribute; kNotFound if the table has no such attribute.
  [[nodiscard]] Status SetVolumeAttribute(std::string_view attribute, std::string_view value);

  // The config with its paths made absolute from `cwd`, validated.
  [[nodiscard]] Result<MountConfig> Build(const std::string& cwd) const;

 private:
  MountConfig config_;
};

// The table's CSI volume attributes: "platform, tlsVerify, ...".
std::string VolumeAttributeNames();

// The flags of `oci-fs mount` (or, registry_only, of any subcommand) that
// give `config`: "--name=value" or "--switch" for each option that differs
// from MountConfig{}, in table order, then "-o LIST" for fuse_options. Never
// the credentials (`creds`): pass them as a file (authfile).
std::vector<std::string> ToArgs(const MountConfig& config, bool registry_only = false);

}  // namespace ocifs
